using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using OrtSparse.Cli;
using OrtSparse.Cli.Bench.Generate;
using OrtSparse.Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>
/// The decoder that bench generate runs under both engines: its genai_config.json describes the graph,
/// bad shapes are refused up front, large weights go to external data, the folder is replaced whole,
/// and patched with method dense it computes what ONNX Runtime's GroupQueryAttention computes.
/// </summary>
public sealed class DecoderModelWriterTests : IDisposable
{
    private static readonly DecoderShape Tiny = new() { Layers = 2, Hidden = 48, Heads = 4, KvHeads = 2, HeadSize = 16, Intermediate = 80, Vocab = 120, MaxLength = 32, Seed = 7 };

    private readonly string _scratch = Directory.CreateTempSubdirectory("ortsparse-decoder-").FullName;

    public void Dispose() => Directory.Delete(_scratch, recursive: true);

    [Fact]
    public void ConfigDescribesTheGraph()
    {
        var folder = DecoderModelWriter.Write(Tiny, Path.Combine(_scratch, "model"));
        using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, DecoderModelWriter.ConfigFileName)));
        var model = config.RootElement.GetProperty("model");
        var decoder = model.GetProperty("decoder");
        var search = config.RootElement.GetProperty("search");
        Assert.Equal("llama", model.GetProperty("type").GetString());
        Assert.Equal((120, 32, 0, 0), (model.GetProperty("vocab_size").GetInt32(), model.GetProperty("context_length").GetInt32(),
            model.GetProperty("eos_token_id").GetInt32(), model.GetProperty("pad_token_id").GetInt32()));
        Assert.Equal((16, 48, 4, 2, 2), (decoder.GetProperty("head_size").GetInt32(), decoder.GetProperty("hidden_size").GetInt32(),
            decoder.GetProperty("num_attention_heads").GetInt32(), decoder.GetProperty("num_key_value_heads").GetInt32(), decoder.GetProperty("num_hidden_layers").GetInt32()));
        Assert.True(search.GetProperty("past_present_share_buffer").GetBoolean());
        Assert.False(search.GetProperty("do_sample").GetBoolean());
        Assert.Equal((1, 32), (search.GetProperty("num_beams").GetInt32(), search.GetProperty("max_length").GetInt32()));

        // Every name the config gives is a graph input or output of the model file it names.
        var graph = OnnxModel.Load(Path.Combine(folder, decoder.GetProperty("filename").GetString()!)).Proto.Graph;
        var inputs = decoder.GetProperty("inputs");
        var outputs = decoder.GetProperty("outputs");
        string Layer(JsonElement names, string key, int layer) => names.GetProperty(key).GetString()!.Replace("%d", layer.ToString());
        var expectedInputs = new List<string> { inputs.GetProperty("input_ids").GetString()!, inputs.GetProperty("attention_mask").GetString()! };
        var expectedOutputs = new List<string> { outputs.GetProperty("logits").GetString()! };
        for (var layer = 0; layer < 2; layer++)
        {
            expectedInputs.AddRange([Layer(inputs, "past_key_names", layer), Layer(inputs, "past_value_names", layer)]);
            expectedOutputs.AddRange([Layer(outputs, "present_key_names", layer), Layer(outputs, "present_value_names", layer)]);
        }
        Assert.Equal(expectedInputs, graph.Input.Select(i => i.Name));
        Assert.Equal(expectedOutputs, graph.Output.Select(o => o.Name));
        Assert.Equal(["input_ids", "attention_mask", "past_key_values.0.key", "past_key_values.0.value", "past_key_values.1.key", "past_key_values.1.value"], expectedInputs);
        Assert.Equal(2, graph.Node.Count(n => n.OpType == "GroupQueryAttention" && n.Domain == "com.microsoft"));
    }

    public static TheoryData<DecoderShape, string> BadShapes() => new()
    {
        { Tiny with { Heads = 6, KvHeads = 4 }, "heads (6) must be a multiple of kv heads (4)" },
        { Tiny with { HeadSize = 15 }, "head size (15) must be a multiple of 16" },
        { Tiny with { HeadSize = 24 }, "head size (24) must be a multiple of 16" },
        { Tiny with { Layers = 0 }, "layers (0) must be positive" },
        { Tiny with { KvHeads = -1 }, "kv heads (-1) must be positive" },
        { Tiny with { MaxLength = 0 }, "max length (0) must be positive" },
        { Tiny with { Vocab = 1 }, "vocab (1) must hold the end-of-sequence token" },
        { Tiny with { ElementType = DataType.Bfloat16 }, "element type (Bfloat16) must be Float or Float16" },
    };

    [Theory]
    [MemberData(nameof(BadShapes))]
    public void BadShapesAreRefusedBeforeAnythingIsWritten(DecoderShape shape, string reason)
    {
        var folder = Path.Combine(_scratch, "refused");
        var error = Assert.Throws<ArgumentException>(() => DecoderModelWriter.Write(shape, folder));
        Assert.Contains(reason, error.Message);
        Assert.Empty(Directory.GetFileSystemEntries(_scratch));
        Assert.Contains(reason, Assert.Throws<ArgumentException>(() => DecoderModelWriter.Build(shape)).Message);
    }

    [Fact]
    public void ParameterCountMatchesTheWeights()
    {
        var model = DecoderModelWriter.Build(Tiny);
        var weights = model.Graph.Initializer.Where(t => t.DataType == (int)DataType.Float && t.Name is not ("cos_cache" or "sin_cache"));
        Assert.Equal(Tiny.ParameterCount, weights.Sum(OnnxTensor.ElementCount));
        Assert.Equal(Tiny.WeightBytes, model.Graph.Initializer.Where(t => t.DataType == (int)DataType.Float).Sum(OnnxTensor.ElementCount) * 4);
    }

    [Fact]
    public void SameSeedSameWeightsOtherSeedOthers()
    {
        var first = DecoderModelWriter.Build(Tiny).Graph.Initializer;
        var again = DecoderModelWriter.Build(Tiny).Graph.Initializer;
        var other = DecoderModelWriter.Build(Tiny with { Seed = 8 }).Graph.Initializer;
        Assert.Equal(first, again);
        var name = "model.layers.1.attn.q_proj.MatMul.weight";
        Assert.NotEqual(first.Single(t => t.Name == name).RawData, other.Single(t => t.Name == name).RawData);
    }

    [Fact]
    public void LargeWeightsGoToExternalDataAndRunTheSame()
    {
        var inline = DecoderModelWriter.Write(Tiny, Path.Combine(_scratch, "inline"));
        var external = DecoderModelWriter.Write(Tiny, Path.Combine(_scratch, "external"), externalDataLimit: 0);
        Assert.False(File.Exists(Path.Combine(inline, DecoderModelWriter.DataFileName)));
        Assert.True(File.Exists(Path.Combine(external, DecoderModelWriter.DataFileName)));
        Assert.True(new FileInfo(Path.Combine(external, DecoderModelWriter.ModelFileName)).Length < Tiny.WeightBytes / 10);

        long[][] prompt = [[5, 9, 17, 33]];
        var expected = DecoderRuns.Step(DecoderModelWriter.Build(Tiny), Tiny, prompt, null, withOrtSparse: false)[DecoderModelWriter.Logits];
        // A session on the file itself, so that ONNX Runtime reads the external data next to it.
        using var options = new SessionOptions();
        using var session = OrtSparse.Runtime.SessionFactory.CreateSession(Path.Combine(external, DecoderModelWriter.ModelFileName), options);
        var inputs = DecoderRuns.Inputs(Tiny, prompt, null);
        try
        {
            using var runOptions = new RunOptions();
            var names = session.InputNames.ToArray();
            using var outputs = session.Run(runOptions, names, names.Select(n => inputs[n]).ToArray(), [DecoderModelWriter.Logits]);
            Assert.Equal(expected.Data, TensorValues.ToDoubles(outputs[0]));
        }
        finally
        {
            DecoderRuns.Dispose(inputs);
        }
    }

    [Fact]
    public void WritingReplacesTheFolderWholeAndLeavesNoStaging()
    {
        var folder = Path.Combine(_scratch, "model");
        DecoderModelWriter.Write(Tiny, folder);
        File.WriteAllText(Path.Combine(folder, "stale.txt"), "from an earlier run");
        DecoderModelWriter.Write(Tiny with { Seed = 9 }, folder);
        Assert.Equal([DecoderModelWriter.ConfigFileName, DecoderModelWriter.ModelFileName], Directory.GetFiles(folder).Select(Path.GetFileName).Order());
        Assert.Equal(["model"], Directory.GetFileSystemEntries(_scratch).Select(Path.GetFileName));
        Assert.Contains("seed9", OnnxModel.Load(Path.Combine(folder, DecoderModelWriter.ModelFileName)).Proto.DocString);

        var file = Path.Combine(_scratch, "a-file");
        File.WriteAllText(file, "");
        Assert.Contains("is a file", Assert.Throws<IOException>(() => DecoderModelWriter.Write(Tiny, file)).Message);
    }

    [Fact]
    public void FloatSixteenDecoderDeclaresItsTypeEverywhere()
    {
        var model = DecoderModelWriter.Build(Tiny with { ElementType = DataType.Float16 });
        Assert.All(model.Graph.Initializer.Where(t => t.Name.EndsWith(".weight", StringComparison.Ordinal) || t.Name.EndsWith("_cache", StringComparison.Ordinal)),
            t => Assert.Equal((int)DataType.Float16, t.DataType));
        Assert.All(model.Graph.Output, o => Assert.Equal((int)DataType.Float16, o.Type.TensorType.ElemType));
        Assert.All(model.Graph.Input.Skip(2), i => Assert.Equal((int)DataType.Float16, i.Type.TensorType.ElemType));
        Assert.All(OnnxTensor.ToFloats(model.Graph.Initializer.Single(t => t.Name == "lm_head.MatMul.weight")), v => Assert.True(float.IsFinite(v)));
    }

    /// <summary>
    /// At widths where σ matters (hidden 1024, eight layers), the float16 model computes the float32
    /// model's logits, finite, to within float16's rounding: nothing overflows or cancels.
    /// </summary>
    [Fact]
    public void FloatSixteenLogitsFollowFloatThirtyTwo()
    {
        var wide = new DecoderShape { Layers = 8, Hidden = 1024, Heads = 16, KvHeads = 4, HeadSize = 64, Intermediate = 2048, Vocab = 512, MaxLength = 64, Seed = 2 };
        long[][] prompt = [Enumerable.Range(0, 24).Select(i => (long)(i * 37 % 510 + 2)).ToArray()];
        var wideHalf = wide with { ElementType = DataType.Float16 };
        var single = DecoderRuns.Step(DecoderModelWriter.Build(wide), wide, prompt, null, withOrtSparse: false)[DecoderModelWriter.Logits].Data;
        var half = DecoderRuns.Step(DecoderModelWriter.Build(wideHalf), wideHalf, prompt, null, withOrtSparse: false)[DecoderModelWriter.Logits].Data;
        Assert.All(half, v => Assert.True(double.IsFinite(v)));
        var spread = Math.Sqrt(single.Average(v => v * v));
        Assert.InRange(spread, DecoderModelWriter.LogitSpread / 2, DecoderModelWriter.LogitSpread * 2);
        var worst = single.Zip(half, (s, h) => Math.Abs(s - h)).Max();
        Assert.True(worst < 0.05 * spread, $"float16 logits differ from float32 by up to {worst:g3} (spread {spread:g3})");
    }

    /// <summary>
    /// A float16 decoder patched with a method that keeps float state: every layer's state is float16,
    /// also where the query's type comes from a contrib op the rewriter cannot infer (layers after the
    /// first), and the model loads in ONNX Runtime.
    /// </summary>
    [Fact]
    public void FloatSixteenStateFollowsTheCacheInEveryLayer()
    {
        var shape = Tiny with { Layers = 3, HeadSize = 64, ElementType = DataType.Float16 };
        var result = ModelPatcher.Patch(DecoderModelWriter.Build(shape), new PatchOptions { Method = new MethodConfig { Method = "quest" } });
        Assert.All(result.Layers, l => Assert.Equal(("float16", "float16"), (l.Plan.Site.ElementType, l.State!.ElementType)));
        using var options = OrtSparse.Runtime.SessionFactory.CreateOptions(new OrtSparse.Runtime.SessionConfig { IntraOpThreads = 1 });
        using var session = new Microsoft.ML.OnnxRuntime.InferenceSession(Google.Protobuf.MessageExtensions.ToByteArray(result.Model), options);
        Assert.All(result.Layers, l => Assert.Equal(Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float16,
            session.OverridableInitializerMetadata[l.State!.Input].ElementDataType));
    }

    public static TheoryData<DecoderShape, double> PatchCases() => new()
    {
        // fp32 on both sides, summed in different orders: differences stay near 1e-6; a wrong position,
        // mask or head mapping moves logits by more than 1e-1.
        { Tiny, 1e-4 },
        // fp16 with a head size the CUDA op takes (ORTSPARSE_TEST_DEVICE=cuda runs it there): each
        // side rounds its attention output to fp16 (~1e-3 relative) before two more layers.
        { Tiny with { HeadSize = 64, ElementType = DataType.Float16 }, 5e-2 },
    };

    /// <summary>
    /// ortsparse patch with method dense on the decoder: every GroupQueryAttention becomes
    /// SparseAttention, and the logits and caches of a prompt and of a decode step after it equal
    /// those of ONNX Runtime's own GroupQueryAttention (on the CPU).
    /// </summary>
    [Theory]
    [MemberData(nameof(PatchCases))]
    public void PatchedDenseDecoderMatchesGroupQueryAttention(DecoderShape shape, double tolerance)
    {
        var model = DecoderModelWriter.Build(shape);
        var result = ModelPatcher.Patch(model, new PatchOptions { Method = new MethodConfig { Method = "dense" } });
        Assert.Equal(shape.Layers, result.Replaced.Count);
        Assert.DoesNotContain(result.Model.Graph.Node, n => n.OpType == "GroupQueryAttention");
        Assert.Equal(shape.Layers, result.Model.Graph.Node.Count(n => n.OpType == SparseAttentionOp.OpType && n.Domain == SparseAttentionOp.Domain));

        var prompts = DecoderRuns.Prompts(2, 9, shape.Vocab, seed: 21).Select(p => p.Select(t => (long)t).ToArray()).ToArray();
        var expected = DecoderRuns.Step(model, shape, prompts, null, withOrtSparse: false);
        var actual = DecoderRuns.Step(result.Model, shape, prompts, null, withOrtSparse: true);
        AssertClose(expected, actual, tolerance, "prompt");

        // One decode step on the prompt's caches (grown by one position, as without shared buffers).
        var pasts = Enumerable.Range(0, shape.Layers)
            .SelectMany(l => new[] { expected[DecoderModelWriter.PresentKey(l)], expected[DecoderModelWriter.PresentValue(l)] }).ToList();
        long[][] next = [[11], [42]];
        AssertClose(DecoderRuns.Step(model, shape, next, pasts, withOrtSparse: false), DecoderRuns.Step(result.Model, shape, next, pasts, withOrtSparse: true),
            tolerance, "decode step");
    }

    private static void AssertClose(Dictionary<string, (long[] Shape, double[] Data)> expected, Dictionary<string, (long[] Shape, double[] Data)> actual,
        double tolerance, string label)
    {
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (name, (shape, want)) in expected)
        {
            var (gotShape, got) = actual[name];
            Assert.Equal(shape, gotShape);
            var worst = want.Zip(got, (w, g) => Math.Abs(w - g)).Max();
            Assert.True(worst <= tolerance, $"{label}: {name} differs by up to {worst:g3} (tolerance {tolerance})");
        }
    }
}
