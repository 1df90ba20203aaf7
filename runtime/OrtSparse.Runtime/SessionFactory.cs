using Microsoft.ML.OnnxRuntime;

namespace OrtSparse.Runtime;

/// <summary>
/// Opens ONNX Runtime sessions with the OrtSparse op library registered, on CPU or on the CUDA
/// provider. In ONNX Runtime 1.29 the CUDA provider is a plugin: it is registered with the
/// environment once per process and appended through its <see cref="OrtEpDevice"/>.
/// </summary>
public static class SessionFactory
{
    /// <summary>
    /// Environment variable: when set, every session writes ONNX Runtime's profile (a JSON trace of
    /// each node's and each copy's time) to files whose names start with its value.
    /// </summary>
    public const string ProfileVariable = "ORTSPARSE_PROFILE";

    private const string CudaRegistrationName = "ortsparse-cuda";
    private const string CudaProviderName = "CUDAExecutionProvider";
    private static readonly object CudaRegistrationLock = new();
    private static readonly object SessionCreationLock = new();
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
            // Method state inputs have empty defaults by design; ONNX Runtime warns about every such input.
            options.LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR;
            options.IntraOpNumThreads = config.IntraOpThreads;
            options.RegisterCustomOpLibrary(NativeLibraries.ResolveOpLibrary(config.OpLibraryPath));
            if (Environment.GetEnvironmentVariable(ProfileVariable) is { Length: > 0 } profilePrefix)
            {
                // ONNX Runtime's profiler: one JSON trace per session, every node and copy timed
                // (the prefix must be set before profiling is switched on).
                options.ProfileOutputPathPrefix = profilePrefix;
                options.EnableProfiling = true;
            }
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
        return CreateSession(modelPath, options);
    }

    /// <summary>
    /// Creates a session on the model at <paramref name="modelPath"/>, one at a time in the process:
    /// ONNX Runtime 1.29 can fail to initialise sessions that register the same custom-op domain
    /// concurrently ("the domain is already exist"), which several generators or tokenizers loading at
    /// once would otherwise hit.
    /// </summary>
    public static InferenceSession CreateSession(string modelPath, SessionOptions options)
    {
        lock (SessionCreationLock)
        {
            return new InferenceSession(modelPath, options);
        }
    }

    /// <summary>Creates a session on the serialised <paramref name="model"/>, one at a time (see <see cref="CreateSession(string, SessionOptions)"/>).</summary>
    public static InferenceSession CreateSession(byte[] model, SessionOptions options)
    {
        lock (SessionCreationLock)
        {
            return new InferenceSession(model, options);
        }
    }

    /// <summary>
    /// The CUDA device that <paramref name="config"/> names (<see cref="SessionConfig.CudaDeviceId"/>),
    /// registering ONNX Runtime's CUDA provider with the environment on first use.
    /// </summary>
    /// <param name="config">The provider path and device ordinal; null means the defaults.</param>
    /// <exception cref="FileNotFoundException">The CUDA provider library is not where <see cref="NativeLibraries.ResolveCudaProvider"/> looks.</exception>
    /// <exception cref="InvalidOperationException">The provider does not load, sees no GPU, or another provider is already registered.</exception>
    public static OrtEpDevice GetCudaDevice(SessionConfig? config = null)
    {
        config ??= new SessionConfig { Device = ExecutionDevice.Cuda };
        var env = OrtEnv.Instance();
        var providerPath = NativeLibraries.ResolveCudaProvider(config.CudaProviderPath);
        lock (CudaRegistrationLock)
        {
            if (_registeredCudaProvider is null)
            {
                try
                {
                    env.RegisterExecutionProviderLibrary(CudaRegistrationName, providerPath);
                }
                catch (OnnxRuntimeException e)
                {
                    throw new InvalidOperationException(
                        $"The CUDA provider {providerPath} did not load (are the CUDA libraries it links, libcudart, libcublas, libcublasLt and " +
                        $"libcurand, on the library path?): {e.Message}", e);
                }
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
        return cudaDevices[config.CudaDeviceId];
    }

    /// <summary>
    /// An allocator of the memory that the kernels of <paramref name="config"/>'s device read: host
    /// memory for the CPU; for CUDA, the GPU's memory through the environment's shared allocator,
    /// which outlives sessions. Tensors it allocates bind through <see cref="OrtIoBinding"/> without
    /// copies; <see cref="OrtEnv.CopyTensors"/> fills them from host tensors. The environment owns it:
    /// do not dispose it.
    /// </summary>
    /// <param name="config">The device; null means CPU.</param>
    public static OrtAllocator GetDeviceAllocator(SessionConfig? config = null)
    {
        if (config is null || config.Device == ExecutionDevice.Cpu)
        {
            return OrtAllocator.DefaultInstance;
        }
        var device = GetCudaDevice(config);
        var env = OrtEnv.Instance();
        // Registering a provider library creates shared allocators for its devices; create one only if it did not.
        return env.GetSharedAllocator(device.GetMemoryInfo(OrtDeviceMemoryType.DEFAULT))
               ?? env.CreateSharedAllocator(device, OrtDeviceMemoryType.DEFAULT, OrtAllocatorType.DeviceAllocator, new Dictionary<string, string>());
    }

    private static void AppendCuda(SessionOptions options, SessionConfig config) =>
        options.AppendExecutionProvider(OrtEnv.Instance(), new[] { GetCudaDevice(config) },
            new Dictionary<string, string> { ["use_tf32"] = config.AllowTf32 ? "1" : "0" });
}
