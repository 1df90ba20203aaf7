namespace OrtSparse.Runtime.Generation;

/// <summary>How <see cref="Model.Load(string, ModelOptions?)"/> opens a patched model.</summary>
public sealed record ModelOptions
{
    /// <summary>The device to run on. Default: <see cref="ExecutionDevice.Cpu"/>.</summary>
    public ExecutionDevice Device { get; init; } = ExecutionDevice.Cpu;

    /// <summary>Intra-op threads; 0 lets ONNX Runtime choose.</summary>
    public int IntraOpThreads { get; init; }

    /// <summary>CUDA device ordinal, for <see cref="ExecutionDevice.Cuda"/>.</summary>
    public int CudaDeviceId { get; init; }

    /// <summary>Path of libortsparse_ops.so; null looks where <see cref="NativeLibraries.ResolveOpLibrary"/> does.</summary>
    public string? OpLibraryPath { get; init; }

    /// <summary>Path of ONNX Runtime's CUDA provider; null looks where <see cref="NativeLibraries.ResolveCudaProvider"/> does.</summary>
    public string? CudaProviderPath { get; init; }

    /// <summary>
    /// The most tokens a sequence may hold (prompt and generated); null takes the model's own limit
    /// (its rotary table, from the runtime config), or <see cref="DefaultMaxLength"/> when it has none.
    /// It may not exceed the model's limit.
    /// </summary>
    public int? MaxLength { get; init; }

    /// <summary>
    /// The KV cache grows in steps of this many tokens (and by at least half its size) instead of
    /// reserving <see cref="MaxLength"/> up front. Default 1024.
    /// </summary>
    public int CacheGrowthTokens { get; init; } = 1024;

    /// <summary>Long prompts are run through the model in chunks of at most this many tokens. Default 512.</summary>
    public int PrefillChunkTokens { get; init; } = 512;

    /// <summary>
    /// Runs every attention layer with this method instead of the one it was patched with, where the
    /// model allows: any layer can run <c>dense</c>, <c>topk</c> or <c>streaming</c>; a layer keeps its
    /// own method with other <see cref="MethodParameters"/>. Null keeps the patched methods.
    /// </summary>
    public string? Method { get; init; }

    /// <summary>Selection parameters (<c>budget</c>, <c>sink</c>, <c>window</c>, <c>dense_below</c>) set on every layer; null keeps them.</summary>
    public IReadOnlyDictionary<string, double>? MethodParameters { get; init; }

    /// <summary>The maximum length when neither the options nor the model give one.</summary>
    public const int DefaultMaxLength = 4096;

    internal void Validate()
    {
        if (IntraOpThreads < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(IntraOpThreads), $"IntraOpThreads ({IntraOpThreads}) must be 0 (automatic) or positive.");
        }
        if (MaxLength is < 2)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxLength), $"MaxLength ({MaxLength}) must be at least 2.");
        }
        if (CacheGrowthTokens < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(CacheGrowthTokens), $"CacheGrowthTokens ({CacheGrowthTokens}) must be positive.");
        }
        if (PrefillChunkTokens < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(PrefillChunkTokens), $"PrefillChunkTokens ({PrefillChunkTokens}) must be positive.");
        }
    }

    /// <summary>The session settings of these options (device, threads, libraries), for a plain session on the same model.</summary>
    public SessionConfig ToSessionConfig() => new()
    {
        Device = Device,
        IntraOpThreads = IntraOpThreads,
        CudaDeviceId = CudaDeviceId,
        OpLibraryPath = OpLibraryPath,
        CudaProviderPath = CudaProviderPath,
    };
}
