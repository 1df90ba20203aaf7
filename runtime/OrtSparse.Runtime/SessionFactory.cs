using Microsoft.ML.OnnxRuntime;

namespace OrtSparse.Runtime;

/// <summary>
/// Opens ONNX Runtime sessions with the OrtSparse op library registered, on CPU or on the CUDA
/// provider. In ONNX Runtime 1.29 the CUDA provider is a plugin: it is registered with the
/// environment once per process and appended through its <see cref="OrtEpDevice"/>.
/// </summary>
public static class SessionFactory
{
    private const string CudaRegistrationName = "ortsparse-cuda";
    private const string CudaProviderName = "CUDAExecutionProvider";
    private static readonly object CudaRegistrationLock = new();
    private static string? _registeredCudaProvider;

    /// <summary>Creates session options for <paramref name="config"/>; the caller disposes them.</summary>
    /// <param name="config">The device, threads and library paths; null means CPU with defaults.</param>
    public static SessionOptions CreateOptions(SessionConfig? config = null)
    {
        config ??= new SessionConfig();
        if (config.IntraOpThreads < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(config), $"IntraOpThreads ({config.IntraOpThreads}) must be 0 (automatic) or positive.");
        }
        var options = new SessionOptions();
        try
        {
            options.GraphOptimizationLevel = config.OptimizationLevel;
            options.IntraOpNumThreads = config.IntraOpThreads;
            options.RegisterCustomOpLibrary(NativeLibraries.ResolveOpLibrary(config.OpLibraryPath));
            if (config.Device == ExecutionDevice.Cuda)
            {
                AppendCuda(options, config);
            }
            return options;
        }
        catch
        {
            options.Dispose();
            throw;
        }
    }

    /// <summary>Opens a session on the model at <paramref name="modelPath"/>.</summary>
    /// <param name="modelPath">An .onnx file.</param>
    /// <param name="config">The device, threads and library paths; null means CPU with defaults.</param>
    public static InferenceSession Open(string modelPath, SessionConfig? config = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelPath);
        if (!File.Exists(modelPath))
        {
            throw new FileNotFoundException($"Model not found: {modelPath}", modelPath);
        }
        using var options = CreateOptions(config);
        return new InferenceSession(modelPath, options);
    }

    private static void AppendCuda(SessionOptions options, SessionConfig config)
    {
        var env = OrtEnv.Instance();
        var providerPath = NativeLibraries.ResolveCudaProvider(config.CudaProviderPath);
        lock (CudaRegistrationLock)
        {
            if (_registeredCudaProvider is null)
            {
                env.RegisterExecutionProviderLibrary(CudaRegistrationName, providerPath);
                _registeredCudaProvider = providerPath;
            }
            else if (_registeredCudaProvider != providerPath)
            {
                throw new InvalidOperationException(
                    $"The CUDA provider is already registered from {_registeredCudaProvider}; cannot also load {providerPath} in one process.");
            }
        }
        var cudaDevices = env.GetEpDevices()
            .Where(d => d.EpName == CudaProviderName && d.HardwareDevice.Type == OrtHardwareDeviceType.GPU)
            .ToList();
        if (config.CudaDeviceId < 0 || config.CudaDeviceId >= cudaDevices.Count)
        {
            throw new InvalidOperationException(cudaDevices.Count == 0
                ? $"The CUDA provider ({providerPath}) found no GPU on this machine."
                : $"CudaDeviceId ({config.CudaDeviceId}) is out of range: the CUDA provider sees {cudaDevices.Count} GPU(s).");
        }
        options.AppendExecutionProvider(env, new[] { cudaDevices[config.CudaDeviceId] }, new Dictionary<string, string>());
    }
}
