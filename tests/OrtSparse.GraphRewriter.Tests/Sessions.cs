using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Onnx;
using OrtSparse.Cli;
using OrtSparse.Runtime;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>Runs in-memory models: with ONNX Runtime alone on the CPU (the reference) or with our op library registered, on the test device.</summary>
internal static class Sessions
{
    /// <summary>Runs <paramref name="model"/> on <paramref name="inputs"/> and returns every output as doubles, by name.</summary>
    public static Dictionary<string, (long[] Shape, double[] Data)> Run(ModelProto model, IReadOnlyDictionary<string, OrtValue> inputs, bool withOrtSparse)
    {
        using var options = withOrtSparse ? TestDevice.CreateOptions() : new SessionOptions { IntraOpNumThreads = 2 };
        return TestDevice.SkipDocumentedCudaGaps(() => Run(model, inputs, options));
    }

    /// <summary>
    /// Opens a session on <paramref name="model"/> with our op library on the CPU and returns the ONNX
    /// Runtime error it raises on <paramref name="inputs"/>: these are the CPU kernel's messages,
    /// which also check values (seqlens_k) that the CUDA kernel leaves on the device.
    /// </summary>
    public static string ErrorOf(ModelProto model, IReadOnlyDictionary<string, OrtValue> inputs)
    {
        using var options = SessionFactory.CreateOptions(new SessionConfig { IntraOpThreads = 2 });
        var error = Assert.ThrowsAny<OnnxRuntimeException>(() => Run(model, inputs, options));
        return error.Message;
    }

    private static Dictionary<string, (long[] Shape, double[] Data)> Run(ModelProto model, IReadOnlyDictionary<string, OrtValue> inputs, SessionOptions options)
    {
        using var session = SessionFactory.CreateSession(model.ToByteArray(), options);
        var names = session.InputNames.ToArray();
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, names, names.Select(n => inputs[n]).ToArray(), session.OutputNames);
        return session.OutputNames.Zip(outputs).ToDictionary(
            p => p.First,
            p => (p.Second.GetTensorTypeAndShape().Shape, TensorValues.ToDoubles(p.Second)));
    }
}
