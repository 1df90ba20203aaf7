using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Onnx;
using OrtSparse.Cli;
using OrtSparse.Cli.Bench.Generate;
using OrtSparse.Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>One input of a test model: its name, type, shape and elements (float[], int[] or long[]).</summary>
public sealed record Feed(string Name, DataType Type, long[] Shape, Array Data)
{
    public OrtValue ToOrtValue() => Data switch
    {
        float[] floats => OrtValue.CreateTensorValueFromMemory(floats, Shape),
        int[] ints => OrtValue.CreateTensorValueFromMemory(ints, Shape),
        long[] longs => OrtValue.CreateTensorValueFromMemory(longs, Shape),
        _ => throw new NotSupportedException($"feed '{Name}' holds {Data.GetType().Name}"),
    };

    public ValueInfoProto ValueInfo() => OnnxBuilder.TensorValueInfo(Name, Type, Shape.Select(d => (Dim)d));

    /// <summary>An output of one run fed back as an input of the next (float or int32, by <paramref name="type"/>).</summary>
    public static Feed From(string name, DataType type, (long[] Shape, double[] Data) output) => new(name, type, output.Shape,
        type == DataType.Int32 ? output.Data.Select(v => (int)v).ToArray() : output.Data.Select(v => (float)v).ToArray());
}

/// <summary>
/// Builds and runs the contrib-op attention models of the GroupQueryAttention and MultiHeadAttention
/// tests: ONNX Runtime's own kernels (GroupQueryAttention, MultiHeadAttention, RotaryEmbedding) on
/// the original model are the reference for the patched one.
/// </summary>
internal static class ContribModels
{
    // Both sides compute in fp32 from inputs uniform in [-1, 1) and sum in different orders; the
    // equivalence tests of ONNX Attention explain why 1e-5 + 1e-4·|expected| is ~10× the rounding
    // differences and far below what a wrong mask, position or head mapping causes (> 1e-2).
    public const double Atol = 1e-5, Rtol = 1e-4;

    /// <summary>A model importing the ONNX domain (unless <paramref name="onnxOpset"/> is null) and com.microsoft 1.</summary>
    public static ModelProto Model(IEnumerable<NodeProto> nodes, IEnumerable<ValueInfoProto> inputs, IEnumerable<ValueInfoProto> outputs,
        IEnumerable<TensorProto> initializers, long? onnxOpset = 21)
    {
        var opsets = new List<OperatorSetIdProto> { OnnxBuilder.Opset("com.microsoft", 1) };
        if (onnxOpset is { } version)
        {
            opsets.Insert(0, OnnxBuilder.Opset("", version));
        }
        var model = OnnxBuilder.Model(OnnxBuilder.Graph("contrib_attention", nodes, inputs, outputs, initializers), opsets);
        model.ProducerName = "ortsparse-tests";
        return model;
    }

    /// <summary>Uniform values in [-1, 1).</summary>
    public static float[] Uniform(Random random, long count) => Enumerable.Range(0, (int)count).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();

    /// <summary>cos and sin tables [positions, rotaryDim / 2] of the usual θ_i = 10000^(−2i/R) rotary embedding.</summary>
    public static (TensorProto Cos, TensorProto Sin) RotaryTables(int positions, int rotaryDim)
    {
        var (cos, sin) = DecoderModelWriter.RotaryTables(positions, rotaryDim);
        return (OnnxTensor.Create("cos_cache", cos, positions, rotaryDim / 2), OnnxTensor.Create("sin_cache", sin, positions, rotaryDim / 2));
    }

    /// <summary>Runs <paramref name="model"/> on the feeds it declares as graph inputs (with our op library: on the test device); every output as doubles, by name.</summary>
    public static Dictionary<string, (long[] Shape, double[] Data)> Run(ModelProto model, IEnumerable<Feed> feeds, bool withOrtSparse)
    {
        var declared = model.Graph.Input.Select(i => i.Name).ToHashSet();
        var used = feeds.Where(f => declared.Contains(f.Name)).ToList();
        using var options = withOrtSparse ? TestDevice.CreateOptions() : new SessionOptions { IntraOpNumThreads = 2 };
        var values = used.Select(f => f.ToOrtValue()).ToList();
        try
        {
            return TestDevice.SkipDocumentedCudaGaps(() =>
            {
                using var session = OrtSparse.Runtime.SessionFactory.CreateSession(model.ToByteArray(), options);
                using var runOptions = new RunOptions();
                using var outputs = session.Run(runOptions, used.Select(f => f.Name).ToArray(), values, session.OutputNames);
                return session.OutputNames.Zip(outputs).ToDictionary(
                    p => p.First,
                    p => (p.Second.GetTensorTypeAndShape().Shape, TensorValues.ToDoubles(p.Second)));
            });
        }
        finally
        {
            foreach (var value in values)
            {
                value.Dispose();
            }
        }
    }

    /// <summary>
    /// Asserts every output of <paramref name="expected"/> has the same shape in <paramref name="actual"/>
    /// and the same elements within tolerance, where <paramref name="defined"/> says an element is
    /// defined (e.g. not a padding row); <paramref name="actual"/> may have more outputs (method state).
    /// </summary>
    public static void AssertMatches(Dictionary<string, (long[] Shape, double[] Data)> expected, Dictionary<string, (long[] Shape, double[] Data)> actual,
        Func<string, long[], long, bool> defined, string label)
    {
        foreach (var (name, (shape, want)) in expected)
        {
            Assert.True(actual.ContainsKey(name), $"the patched model has no output '{name}' ({label})");
            var (gotShape, got) = actual[name];
            Assert.Equal(shape, gotShape);
            var compared = 0;
            for (long i = 0; i < want.Length; i++)
            {
                if (!defined(name, shape, i))
                {
                    continue;
                }
                compared++;
                var error = Math.Abs(got[i] - want[i]);
                Assert.True(error <= Atol + Rtol * Math.Abs(want[i]),
                    $"{name}[{i}]: ours {got[i]:g9}, ONNX Runtime {want[i]:g9}, |diff| {error:g3} over {label}");
            }
            Assert.True(compared > 0, $"no element of '{name}' was compared ({label})");
        }
    }

    /// <summary>Patches <paramref name="model"/> with <paramref name="method"/>; the patched model has no node of <paramref name="opType"/> left.</summary>
    public static ModelProto Patch(ModelProto model, string opType, string method = "dense", IReadOnlyDictionary<string, double>? parameters = null,
        OrtSparse.Calibration.CalibrationData? calibration = null)
    {
        var result = ModelPatcher.Patch(model, new PatchOptions
        {
            Method = new MethodConfig { Method = method, Parameters = parameters ?? new Dictionary<string, double>() },
            Calibration = calibration,
        });
        Assert.Single(result.Replaced);
        Assert.Single(result.Model.Graph.Node, n => n.OpType == SparseAttentionOp.OpType && n.Domain == SparseAttentionOp.Domain);
        Assert.DoesNotContain(result.Model.Graph.Node, n => n.OpType == opType);
        return result.Model;
    }

    /// <summary>Sparse-method parameters under which every key is selected: the result must equal dense attention.</summary>
    public static Dictionary<string, double> FullBudget(params (string Name, double Value)[] extra)
    {
        var parameters = new Dictionary<string, double> { ["budget"] = 1, ["dense_below"] = 0, ["sink"] = 1, ["window"] = 1 };
        foreach (var (name, value) in extra)
        {
            parameters[name] = value;
        }
        return parameters;
    }
}
