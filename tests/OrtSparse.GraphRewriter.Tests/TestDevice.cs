using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Onnx;
using OrtSparse.Cli.Bench;
using OrtSparse.Runtime;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>
/// Where the tests run our op: the CPU, or, with ORTSPARSE_TEST_DEVICE=cuda (the GPU host, see
/// tests/gpu/run_xunit_gpu.sh), ONNX Runtime's CUDA provider. The references (ONNX Runtime's own
/// kernels, golden data) are computed on the CPU either way. Without the variable nothing changes.
/// </summary>
internal static class TestDevice
{
    /// <summary>
    /// What the CUDA op documents it does not implement (docs/ops.md): float32 prefill, hash and hyper
    /// prefill, head sizes other than 64, 80, 96, 128, and a value head size unlike the key's. On
    /// CUDA a case that hits one of them is skipped with the op's message; any other NOT_IMPLEMENTED fails.
    /// </summary>
    private static readonly string[] DocumentedCudaGaps =
    [
        "the attention type must be float16 or bfloat16",
        "has no CUDA prefill yet",
        "is not one of 64, 80, 96, 128",
        "differs from the key head size",
    ];

    private static readonly Lazy<string?> CudaKernelProblem = new(FindCudaKernelProblem);

    /// <summary>The device of <c>ORTSPARSE_TEST_DEVICE</c> (cpu when unset).</summary>
    public static ExecutionDevice Current { get; } = Environment.GetEnvironmentVariable("ORTSPARSE_TEST_DEVICE") switch
    {
        null or "" or "cpu" => ExecutionDevice.Cpu,
        "cuda" => ExecutionDevice.Cuda,
        var other => throw new InvalidOperationException($"ORTSPARSE_TEST_DEVICE must be cpu or cuda, got '{other}'"),
    };

    /// <summary>Whether the op runs on the CUDA provider.</summary>
    public static bool IsCuda => Current == ExecutionDevice.Cuda;

    /// <summary>The CLI arguments that select the device.</summary>
    public static string[] CliArgs => IsCuda ? ["--device", "cuda"] : [];

    /// <summary>Session options with our op library registered, on the test device.</summary>
    public static SessionOptions CreateOptions()
    {
        EnsureOpRunsThere();
        return SessionFactory.CreateOptions(new SessionConfig { Device = Current, IntraOpThreads = 2 });
    }

    /// <summary>On CUDA, fails unless SparseAttention has a CUDA kernel, so that no test passes on the CPU believing it ran on the GPU.</summary>
    public static void EnsureOpRunsThere()
    {
        if (IsCuda && CudaKernelProblem.Value is { } problem)
        {
            throw new InvalidOperationException(problem);
        }
    }

    /// <summary>
    /// Runs <paramref name="run"/>; on CUDA, a NOT_IMPLEMENTED error for one of the documented gaps
    /// of the CUDA op skips the test with the op's message instead.
    /// </summary>
    public static T SkipDocumentedCudaGaps<T>(Func<T> run)
    {
        try
        {
            return run();
        }
        catch (OnnxRuntimeException e) when (IsCuda && e.Message.StartsWith("[ErrorCode:NotImplemented]", StringComparison.Ordinal)
                                              && DocumentedCudaGaps.Any(gap => e.Message.Contains(gap, StringComparison.Ordinal)))
        {
            Assert.Skip($"not implemented by the CUDA op (docs/ops.md): {e.Message}");
            throw;  // Assert.Skip throws; the compiler does not know
        }
    }

    /// <summary>
    /// Checks once that SparseAttention has a CUDA kernel: a session that may not fall back to the
    /// CPU accepts a decode step. Without it every op would quietly run on the CPU.
    /// </summary>
    private static string? FindCudaKernelProblem()
    {
        var step = new AttentionBenchSettings { Batch = 1, Context = 16, Heads = 2, KvHeads = 1, HeadDim = 64, ElementType = TensorProto.Types.DataType.Float16 };
        try
        {
            using var options = SessionFactory.CreateOptions(new SessionConfig { Device = ExecutionDevice.Cuda });
            options.AddSessionConfigEntry("session.disable_cpu_ep_fallback", "1");
            using var session = SessionFactory.CreateSession(DecodeStepModel.SparseAttention(step, "dense", [], 0, reportSelection: false).ToByteArray(), options);
            return null;
        }
        catch (Exception e) when (e is OnnxRuntimeException or InvalidOperationException or FileNotFoundException)
        {
            return "ORTSPARSE_TEST_DEVICE=cuda, but SparseAttention does not run on the CUDA provider (build the op library with -DORTSPARSE_CUDA=ON " +
                   $"and point ORTSPARSE_OPS_LIBRARY at it, now '{Environment.GetEnvironmentVariable("ORTSPARSE_OPS_LIBRARY")}'; the provider comes from " +
                   $"ORTSPARSE_CUDA_PROVIDER, now '{Environment.GetEnvironmentVariable("ORTSPARSE_CUDA_PROVIDER")}'): {e.Message}";
        }
    }
}
