using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Onnx;
using OrtSparse.Cli;
using OrtSparse.Runtime;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>Runs in-memory models: with ONNX Runtime alone (the reference) or with our op library registered.</summary>
internal static class Sessions
{
    /// <summary>Runs <paramref name="model"/> on <paramref name="inputs"/> and returns every output as doubles, by name.</summary>
    public static Dictionary<string, (long[] Shape, double[] Data)> Run(ModelProto model, IReadOnlyDictionary<string, OrtValue> inputs, bool withOrtSparse)
    {
        using var options = withOrtSparse ? SessionFactory.CreateOptions(new SessionConfig { IntraOpThreads = 2 }) : new SessionOptions { IntraOpNumThreads = 2 };
        using var session = new InferenceSession(model.ToByteArray(), options);
        var names = session.InputNames.ToArray();
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, names, names.Select(n => inputs[n]).ToArray(), session.OutputNames);
        return session.OutputNames.Zip(outputs).ToDictionary(
            p => p.First,
            p => (p.Second.GetTensorTypeAndShape().Shape, TensorValues.ToDoubles(p.Second)));
    }

    /// <summary>Opens a session on <paramref name="model"/> with our op library and returns the ONNX Runtime error it raises on <paramref name="inputs"/>.</summary>
    public static string ErrorOf(ModelProto model, IReadOnlyDictionary<string, OrtValue> inputs)
    {
        var error = Assert.ThrowsAny<OnnxRuntimeException>(() => Run(model, inputs, withOrtSparse: true));
        return error.Message;
    }
}
