using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Onnx;
using OrtSparse.Runtime;

namespace OrtSparse.Cli.Bench;

/// <summary>
/// The device a benchmark runs on: sessions whose nodes all run there, and tensors in the memory its
/// kernels read (host memory for the CPU, GPU memory for CUDA), so that bound steps copy nothing.
/// </summary>
internal sealed class BenchDevice
{
    private readonly SessionConfig _config;
    private readonly OrtAllocator _allocator;

    private BenchDevice(SessionConfig config)
    {
        _config = config;
        _allocator = SessionFactory.GetDeviceAllocator(config);
    }

    /// <summary>The device.</summary>
    public ExecutionDevice Device => _config.Device;

    /// <summary>
    /// Opens <paramref name="device"/>. For CUDA this registers ONNX Runtime's CUDA provider and finds
    /// the GPU, so a missing provider or GPU fails here, with a message that says what is missing.
    /// </summary>
    /// <param name="device">CPU or CUDA.</param>
    /// <param name="threads">Intra-op threads (0: ONNX Runtime's choice).</param>
    public static BenchDevice Open(ExecutionDevice device, int threads) => new(new SessionConfig { Device = device, IntraOpThreads = threads });

    /// <summary>Opens the device of <paramref name="config"/>, with the rest of its settings (threads, op library, GPU), as <see cref="Open(ExecutionDevice, int)"/> does.</summary>
    public static BenchDevice Open(SessionConfig config) => new(config ?? throw new ArgumentNullException(nameof(config)));

    /// <summary>A session on <paramref name="model"/> with the op library registered; on CUDA every node must run on the GPU.</summary>
    public InferenceSession OpenSession(ModelProto model)
    {
        using var options = SessionFactory.CreateOptions(_config);
        if (Device == ExecutionDevice.Cuda)
        {
            // Otherwise a node without a CUDA kernel (an op library built without CUDA, GroupQueryAttention
            // in fp32) would run on the CPU and be timed as if it ran on the GPU.
            options.AddSessionConfigEntry("session.disable_cpu_ep_fallback", "1");
        }
        return SessionFactory.CreateSession(model.ToByteArray(), options);
    }

    /// <summary>An uninitialised tensor in the device's memory; the caller disposes it.</summary>
    public OrtValue Allocate(TensorElementType type, long[] shape) => OrtValue.CreateAllocatedTensorValue(_allocator, type, shape);

    /// <summary>Copies host tensor <paramref name="host"/> into device tensor <paramref name="target"/> of the same type and shape; returns when the copy is done.</summary>
    public void Upload(OrtValue host, OrtValue target) =>
        OrtEnv.Instance().CopyTensors([host], [target], null);  // no stream: a synchronous copy
}
