namespace OrtSparse.Runtime;

/// <summary>How to open a session on a model that uses OrtSparse's custom ops.</summary>
public sealed record SessionConfig
{
    /// <summary>The device to run on. Default: <see cref="ExecutionDevice.Cpu"/>.</summary>
    public ExecutionDevice Device { get; init; } = ExecutionDevice.Cpu;

    /// <summary>Intra-op threads; 0 lets ONNX Runtime choose (one per physical core).</summary>
    public int IntraOpThreads { get; init; }

    /// <summary>CUDA device ordinal, for <see cref="ExecutionDevice.Cuda"/>.</summary>
    public int CudaDeviceId { get; init; }

    /// <summary>
    /// Path of libortsparse_ops.so; null looks for it in ORTSPARSE_OPS_LIBRARY, then next to this
    /// assembly, then in the repository's native build folder.
    /// </summary>
    public string? OpLibraryPath { get; init; }

    /// <summary>
    /// Path of ONNX Runtime's CUDA provider library (libonnxruntime_providers_cuda.so); null looks in
    /// ORTSPARSE_CUDA_PROVIDER, then next to this assembly.
    /// </summary>
    public string? CudaProviderPath { get; init; }

    /// <summary>
    /// Let the CUDA provider run float32 MatMuls on TF32 tensor cores (ONNX Runtime's <c>use_tf32</c>; its own default is on).
    /// Default: off, so a float32 model computes in float32 on the GPU as on the CPU (PyTorch's default too); TF32 rounds
    /// operands to 10 mantissa bits, about 1e-3 relative error per product. Float16 and bfloat16 models are unaffected.
    /// </summary>
    public bool AllowTf32 { get; init; }

    /// <summary>ONNX Runtime's graph optimisation level. Default: all optimisations.</summary>
    public Microsoft.ML.OnnxRuntime.GraphOptimizationLevel OptimizationLevel { get; init; } =
        Microsoft.ML.OnnxRuntime.GraphOptimizationLevel.ORT_ENABLE_ALL;
}
