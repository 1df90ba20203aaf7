using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using Onnx;
using OrtSparse.Cli;
using OrtSparse.Onnx;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>
/// The exported corpus (models/corpus, written by models/export_corpus.py): tiny random-weight Hugging Face
/// decoders through torch.onnx.export at opset 18 and 23, eager and SDPA attention, with PyTorch's logits and
/// greedy generations as the reference. Every export must patch, equal PyTorch's logits, and generate
/// PyTorch's tokens step by step through the cache the rewriter adds.
/// </summary>
public sealed class CorpusTests
{
    /// <summary>PyTorch and ONNX Runtime both compute in fp32; the bound for whole-model logits.</summary>
    private const double Atol = 1e-3;

    public static TheoryData<string> Exports()
    {
        var data = new TheoryData<string>();
        foreach (var family in new[] { "llama", "qwen2", "mistral", "phi3", "gpt2", "gpt_neox" })
        {
            foreach (var attention in new[] { "eager", "sdpa" })
            {
                foreach (var opset in new[] { 18, 23 })
                {
                    data.Add($"{family}-{attention}-opset{opset}");
                }
            }
        }
        return data;
    }

    private static string Folder(string export) => Path.Combine(CliTests.RepositoryRoot(), "models", "corpus", export);

    private static ModelProto Load(string export) => OnnxModel.Load(Path.Combine(Folder(export), "model.onnx")).Proto;

    private static PatchResult Patch(string export, string method, IReadOnlyDictionary<string, double>? parameters = null, bool addCache = false) =>
        ModelPatcher.Patch(Load(export), new PatchOptions
        {
            Method = new MethodConfig { Method = method, Parameters = parameters ?? new Dictionary<string, double>() },
            AddCache = addCache,
        });

    [Theory]
    [MemberData(nameof(Exports))]
    public void InspectFindsEveryLayer(string export)
    {
        var sites = AttentionSiteFinder.Find(Load(export));
        Assert.Equal(2, sites.Count);
        Assert.All(sites, s => Assert.True(s.CanReplace, $"{s.NodeName}: {s.UnsupportedReason}"));
        var gqa = export.Split('-')[0] is "llama" or "qwen2" or "mistral";
        Assert.All(sites, s => Assert.Equal((4, gqa ? 2 : 4, 8), (s.NumHeads!.Value, s.KvNumHeads!.Value, s.HeadDim!.Value)));
    }

    [Theory]
    [MemberData(nameof(Exports))]
    public void DenseMatchesPyTorchLogits(string export)
    {
        var result = Patch(export, "dense");
        AssertAttentionReplaced(result, export);
        AssertLogitsMatch(result.Model, export, "dense");
    }

    [Theory]
    [MemberData(nameof(Exports))]
    public void TopkWithTheWholeCacheInBudgetMatchesPyTorchLogits(string export) =>
        AssertLogitsMatch(Patch(export, "topk", ContribModels.FullBudget()).Model, export, "topk");

    /// <summary>With the cache added, the prompt from an empty cache gives the same logits.</summary>
    [Theory]
    [MemberData(nameof(Exports))]
    public void WithTheAddedCacheAPrefillMatchesPyTorchLogits(string export)
    {
        var result = Patch(export, "dense", addCache: true);
        Assert.Equal(["seqlens_k", "total_sequence_length", "past_key_values.0.key", "past_key_values.0.value", "past_key_values.1.key", "past_key_values.1.value"],
            result.Model.Graph.Input.Skip(1).Select(i => i.Name));
        Assert.Equal(["logits", "present.0.key", "present.0.value", "present.1.key", "present.1.value"], result.Model.Graph.Output.Select(o => o.Name));
        AssertLogitsMatch(result.Model, export, "dense with a cache");

        using var config = JsonDocument.Parse(RuntimeConfig.ToJson(result, "model.onnx"));
        var layers = config.RootElement.GetProperty("layers").EnumerateArray().ToList();
        Assert.All(layers, l => Assert.True(l.GetProperty("cache").GetProperty("added").GetBoolean()));
        Assert.All(layers, l => Assert.Equal("shared_buffer", l.GetProperty("cache").GetProperty("mode").GetString()));
        Assert.Equal(["present.0.key", "present.1.key"], layers.Select(l => l.GetProperty("cache").GetProperty("present_key").GetString()));
        var rotary = export.Split('-')[0] != "gpt2";
        Assert.Equal(rotary ? "4096" : "null", config.RootElement.GetProperty("max_length").GetRawText());
    }

    /// <summary>Greedy decoding one token at a time through the added cache equals PyTorch's greedy decoding by full recomputation.</summary>
    [Theory]
    [MemberData(nameof(Exports))]
    public void GreedyGenerationThroughTheAddedCacheMatchesPyTorch(string export)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder(export), "generation.json")));
        var prompt = json.RootElement.GetProperty("prompt").EnumerateArray().Select(e => e.GetInt64()).ToArray();
        var expected = json.RootElement.GetProperty("greedy").EnumerateArray().Select(e => e.GetInt64()).ToArray();
        foreach (var (method, parameters) in new[] { ("dense", new Dictionary<string, double>()), ("topk", ContribModels.FullBudget()) })
        {
            var result = Patch(export, method, parameters, addCache: true);
            Assert.Equal(expected, Generate(result, prompt, expected.Length));
        }
    }

    /// <summary>A mask the rewriter cannot prove causal is refused with the reason, not replaced by is_causal.</summary>
    [Fact]
    public void AMaskThatHidesTheDiagonalIsRefused()
    {
        var model = Load("llama-eager-opset18");
        var lessOrEqual = model.Graph.Node.Single(n => n.OpType == "LessOrEqual");
        lessOrEqual.OpType = "Less";
        var sites = AttentionSiteFinder.Find(model);
        Assert.Equal(2, sites.Count);
        Assert.All(sites, s => Assert.Equal("the mask 'where' is not causal: for 1 sequences of 3 tokens query 0 does not see key 0", s.UnsupportedReason));
    }

    /// <summary>A rotation whose cos and sin come from a graph input cannot move into the op: the reason names it.</summary>
    [Fact]
    public void ARotaryTableReadFromAnInputIsRefused()
    {
        var model = Load("llama-eager-opset23");
        var input = OnnxBuilder.TensorValueInfo("external_angles", TensorProto.Types.DataType.Float, [1, Dim.Unknown, 4]);
        model.Graph.Input.Add(input);
        foreach (var node in model.Graph.Node.Where(n => n.OpType is "Cos" or "Sin"))
        {
            node.Input[0] = "external_angles";
        }
        var sites = AttentionSiteFinder.Find(model);
        Assert.Equal(2, sites.Count);
        Assert.All(sites, s => Assert.Matches(
            "^rotary embedding \\(ONNX RotaryEmbedding\\) cannot move into the op: the query cos values '[^']+' are not a table of positions: it reads the values of graph input 'external_angles'$",
            s.UnsupportedReason));
    }

    private static void AssertAttentionReplaced(PatchResult result, string export)
    {
        Assert.Equal(2, result.Layers.Count);
        var graph = result.Model.Graph;
        Assert.Equal(2, graph.Node.Count(n => n.OpType == SparseAttentionOp.OpType && n.Domain == SparseAttentionOp.Domain));
        Assert.DoesNotContain(graph.Node, n => n.OpType is "Softmax" or "Attention" or "RotaryEmbedding" or "Cos" or "Sin");
        var rotary = export.Split('-')[0] != "gpt2";
        Assert.All(result.Layers, l => Assert.Equal(rotary, l.Rotary is not null));
    }

    private static void AssertLogitsMatch(ModelProto model, string export, string label)
    {
        var data = Path.Combine(Folder(export), "test_data_set_0");
        var input = OnnxTensor.Load(Path.Combine(data, "input_0.pb"));
        var expected = TensorValues.ToDoubles(OnnxTensor.Load(Path.Combine(data, "output_0.pb")));
        var feeds = new Dictionary<string, OrtValue> { ["input_ids"] = TensorValues.ToOrtValue(input) };
        feeds.AddEmptyCache(model, batch: input.Dims[0], length: input.Dims[1]);
        try
        {
            var (shape, logits) = Sessions.Run(model, feeds, withOrtSparse: true)["logits"];
            Assert.Equal([input.Dims[0], input.Dims[1], 128L], shape);
            var worst = expected.Zip(logits, (e, g) => Math.Abs(e - g)).Max();
            Assert.True(worst <= Atol, $"{export} {label}: max |logits − PyTorch| = {worst:g3}");
        }
        finally
        {
            foreach (var value in feeds.Values)
            {
                value.Dispose();
            }
        }
    }

    /// <summary>Greedy tokens: the prompt from an empty cache, then one token per step with the presents fed back as pasts.</summary>
    private static long[] Generate(PatchResult result, long[] prompt, int count)
    {
        using var options = OrtSparse.Runtime.SessionFactory.CreateOptions(new OrtSparse.Runtime.SessionConfig { IntraOpThreads = 2 });
        using var session = OrtSparse.Runtime.SessionFactory.CreateSession(Google.Protobuf.MessageExtensions.ToByteArray(result.Model), options);
        var caches = result.Layers.SelectMany(l => new[] { (l.Plan.Site.PastKey!, l.Plan.Site.PresentKey!), (l.Plan.Site.PastValue!, l.Plan.Site.PresentValue!) }).ToList();
        var feeds = new Dictionary<string, OrtValue>();
        feeds.AddEmptyCache(result.Model, batch: 1, length: prompt.Length);
        var tokens = new List<long>();
        var step = prompt;
        var total = prompt.Length;
        try
        {
            while (tokens.Count < count)
            {
                feeds["input_ids"] = OrtValue.CreateTensorValueFromMemory(step, [1, step.Length]);
                CacheFeeds.AddLengths(feeds, batch: 1, total);
                var outputNames = new[] { "logits" }.Concat(caches.Select(c => c.Item2)).ToArray();
                using var runOptions = new RunOptions();
                var outputs = session.Run(runOptions, feeds.Keys.ToArray(), feeds.Values.ToArray(), outputNames);
                var logits = TensorValues.ToDoubles(outputs[0]);
                var next = ArgMax(logits.AsSpan(logits.Length - 128));
                tokens.Add(next);
                foreach (var value in feeds.Values)
                {
                    value.Dispose();
                }
                feeds.Clear();
                outputs[0].Dispose();
                for (var c = 0; c < caches.Count; c++)
                {
                    feeds[caches[c].Item1] = outputs[c + 1];
                }
                step = [next];
                total++;
            }
        }
        finally
        {
            foreach (var value in feeds.Values)
            {
                value.Dispose();
            }
        }
        return tokens.ToArray();
    }

    /// <summary>The first index of the largest value, as torch.argmax.</summary>
    private static long ArgMax(ReadOnlySpan<double> values)
    {
        var best = 0;
        for (var i = 1; i < values.Length; i++)
        {
            best = values[i] > values[best] ? i : best;
        }
        return best;
    }
}

/// <summary>Feeds for the cache inputs the rewriter adds.</summary>
internal static class CacheFeeds
{
    /// <summary>
    /// Adds an empty [batch, kv_heads, 0, head_size] float tensor for every past_key_values.* input of
    /// <paramref name="model"/>, and the cache lengths of a first step of <paramref name="length"/> tokens.
    /// </summary>
    public static void AddEmptyCache(this Dictionary<string, OrtValue> feeds, ModelProto model, long batch, long length)
    {
        if (model.Graph.Input.Any(i => i.Name == "seqlens_k"))
        {
            AddLengths(feeds, batch, length);
        }
        foreach (var input in model.Graph.Input.Where(i => i.Name.StartsWith("past_key_values.", StringComparison.Ordinal)))
        {
            var dims = input.Type.TensorType.Shape.Dim;
            feeds[input.Name] = OrtValue.CreateTensorValueFromMemory(Array.Empty<float>(), [batch, dims[1].DimValue, 0, dims[3].DimValue]);
        }
    }

    /// <summary>Sets seqlens_k and total_sequence_length (the inputs of an added cache) for <paramref name="total"/> keys after the step.</summary>
    public static void AddLengths(Dictionary<string, OrtValue> feeds, long batch, long total)
    {
        feeds["seqlens_k"] = OrtValue.CreateTensorValueFromMemory(Enumerable.Repeat((int)total - 1, (int)batch).ToArray(), [batch]);
        feeds["total_sequence_length"] = OrtValue.CreateTensorValueFromMemory(new[] { (int)total }, []);
    }
}
