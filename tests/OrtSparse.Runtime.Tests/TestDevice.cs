using OrtSparse.Runtime.Generation;

namespace OrtSparse.Runtime.Tests;

/// <summary>
/// Where the runtime's tests run the model: the CPU, or with ORTSPARSE_TEST_DEVICE=cuda (the GPU host,
/// tests/gpu/run_xunit_gpu.sh) ONNX Runtime's CUDA provider, cache and logits in GPU memory. The
/// references (PyTorch's tokens, ONNX Runtime's CPU kernels) are the same either way.
/// </summary>
internal static class TestDevice
{
    /// <summary>The device of <c>ORTSPARSE_TEST_DEVICE</c> (cpu when unset).</summary>
    public static ExecutionDevice Current { get; } = Environment.GetEnvironmentVariable("ORTSPARSE_TEST_DEVICE") switch
    {
        null or "" or "cpu" => ExecutionDevice.Cpu,
        "cuda" => ExecutionDevice.Cuda,
        var other => throw new InvalidOperationException($"ORTSPARSE_TEST_DEVICE must be cpu or cuda, got '{other}'"),
    };

    /// <summary>Model options on the test device with one CPU thread.</summary>
    public static ModelOptions Options => new() { Device = Current, IntraOpThreads = 1 };
}
