using Onnx;
using OrtSparse.Calibration;
using OrtSparse.Cli;
using OrtSparse.Onnx;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>
/// com.microsoft.MultiHeadAttention, with the com.microsoft.RotaryEmbedding nodes that feed it, against
/// the same model patched to SparseAttention (the rotary embedding moved into the op): ONNX Runtime's
/// own kernels are the reference (dense, topk with a budget covering the cache, and loki over two steps
/// with its pre-rotary state fed back); and what inspect and patch say about sites they refuse.
/// </summary>
public sealed class MultiHeadAttentionTests
{
    public static TheoryData<MultiHeadAttentionCase> Cases() =>
    [
        // Prefill without and with a cache input, decode, a chunk after a cached prefix; batch 2.
        new MultiHeadAttentionCase { QueryLength = 6, WithCache = false },
        new MultiHeadAttentionCase { Batch = 2, QueryLength = 5 },
        new MultiHeadAttentionCase { Batch = 2, PastLength = 11 },
        new MultiHeadAttentionCase { QueryLength = 4, PastLength = 7, NumHeads = 2, HeadDim = 32 },
        // Not causal; a scale.
        new MultiHeadAttentionCase { QueryLength = 3, PastLength = 5, Unidirectional = false, Scale = 0.3f },
        // The rotary embedding fused: whole heads, partial, interleaved; prefill and decode.
        new MultiHeadAttentionCase { Batch = 2, QueryLength = 5, RotaryDim = 16 },
        new MultiHeadAttentionCase { Batch = 2, PastLength = 9, RotaryDim = 16 },
        new MultiHeadAttentionCase { QueryLength = 3, PastLength = 6, HeadDim = 32, RotaryDim = 16 },
        new MultiHeadAttentionCase { Batch = 2, QueryLength = 2, PastLength = 4, RotaryDim = 16, Interleaved = true },
        // key_padding_mask, attention_bias, both; with rotary.
        new MultiHeadAttentionCase { Batch = 2, QueryLength = 3, PastLength = 6, KeyPaddingMask = true },
        new MultiHeadAttentionCase { Batch = 2, PastLength = 8, AttentionBias = true },
        new MultiHeadAttentionCase { Batch = 2, QueryLength = 4, PastLength = 5, KeyPaddingMask = true, AttentionBias = true, RotaryDim = 16 },
        // The projection bias (added after the rotation, so the rotary embedding stays a node of its own).
        new MultiHeadAttentionCase { Batch = 2, QueryLength = 3, PastLength = 4, Bias = true },
        new MultiHeadAttentionCase { QueryLength = 2, PastLength = 5, Bias = true, RotaryDim = 16 },
    ];

    [Theory]
    [MemberData(nameof(Cases))]
    public void DenseMatchesOnnxRuntime(MultiHeadAttentionCase attentionCase) => AssertPatchedMatches(attentionCase, "dense");

    [Theory]
    [MemberData(nameof(TopKCases))]
    public void TopKWithTheWholeCacheInBudgetMatchesOnnxRuntime(MultiHeadAttentionCase attentionCase) =>
        AssertPatchedMatches(attentionCase, "topk", ContribModels.FullBudget());

    public static TheoryData<MultiHeadAttentionCase> TopKCases() =>
    [
        new MultiHeadAttentionCase { Batch = 2, PastLength = 9, RotaryDim = 16 },
        new MultiHeadAttentionCase { Batch = 2, QueryLength = 3, PastLength = 6, KeyPaddingMask = true },
    ];

    private static void AssertPatchedMatches(MultiHeadAttentionCase attentionCase, string method, IReadOnlyDictionary<string, double>? parameters = null)
    {
        var model = attentionCase.BuildModel();
        var patched = ContribModels.Patch(model, "MultiHeadAttention", method, parameters);
        Assert.Equal(attentionCase is { RotaryDim: > 0, Bias: true }, patched.Graph.Node.Any(n => n.OpType == "RotaryEmbedding"));
        var feeds = attentionCase.Feeds(seed: 13);
        var expected = ContribModels.Run(model, feeds, withOrtSparse: false);
        var actual = ContribModels.Run(patched, feeds, withOrtSparse: true);
        ContribModels.AssertMatches(expected, actual, (_, _, _) => true, $"{attentionCase} {method}");
    }

    [Fact]
    public void TheRotaryEmbeddingMovesIntoTheOp()
    {
        var model = new MultiHeadAttentionCase { Batch = 2, PastLength = 9, HeadDim = 32, RotaryDim = 16, Interleaved = true }.BuildModel();
        var patched = ContribModels.Patch(model, "MultiHeadAttention");
        var node = patched.Graph.Node.Single();
        Assert.Equal(["query_in", "key_in", "value", "past_key_values.0.key", "past_key_values.0.value", "", "", "cos_cache", "sin_cache", "position_ids"], node.Input);
        Assert.Equal(["output", "present.0.key", "present.0.value"], node.Output);
        long Int(string name) => node.Attribute.Single(a => a.Name == name).I;
        Assert.Equal((4, 4, 1, 1, 1), (Int("num_heads"), Int("kv_num_heads"), Int("is_causal"), Int("do_rotary"), Int("rotary_interleaved")));
        Assert.DoesNotContain(node.Attribute, a => a.Name == "scale");
    }

    [Fact]
    public void ARotatedValueOthersReadStaysComputed()
    {
        var model = new MultiHeadAttentionCase { PastLength = 3, RotaryDim = 16 }.BuildModel();
        model.Graph.Output.Add(OnnxBuilder.TensorValueInfo("key", TensorProto.Types.DataType.Float, [(Dim)1, 1, 64]));
        var patched = ContribModels.Patch(model, "MultiHeadAttention");
        var rotary = Assert.Single(patched.Graph.Node, n => n.OpType == "RotaryEmbedding");
        Assert.Equal("key", rotary.Output[0]);
        Assert.Equal("key_in", patched.Graph.Node.Single(n => n.OpType == SparseAttentionOp.OpType).Input[1]);
        var feeds = new MultiHeadAttentionCase { PastLength = 3, RotaryDim = 16 }.Feeds(seed: 2);
        ContribModels.AssertMatches(ContribModels.Run(model, feeds, false), ContribModels.Run(patched, feeds, true), (_, _, _) => true, "shared rotary");
    }

    /// <summary>
    /// loki keeps pre-rotary key summaries beside the cache, which the op cannot rebuild from the rotated
    /// cache: a prefill step produces them, the decode step reads them back. With every key in budget
    /// and an exact (identity) basis, both steps equal ONNX Runtime's.
    /// </summary>
    [Fact]
    public void LokiStateCarriesFromPrefillToDecodeThroughTheFusedRotary()
    {
        var prefill = new MultiHeadAttentionCase { Batch = 2, QueryLength = 6, RotaryDim = 16 };
        var model = prefill.BuildModel();
        var calibration = new CalibrationData();
        var identity = new float[4 * 16 * 16];
        for (var h = 0; h < 4; h++)
        {
            for (var d = 0; d < 16; d++)
            {
                identity[(h * 16 + d) * 16 + d] = 1;
            }
        }
        calibration.SetTensor(CalibrationNames.LokiBasis(0), new CalibrationTensor(identity, 4, 16, 16));
        var patched = ContribModels.Patch(model, "MultiHeadAttention", "loki", ContribModels.FullBudget(("rank", 16)), calibration);
        Assert.Contains(patched.Graph.Input, i => i.Name == "past_key_values.0.ortsparse_summary");
        Assert.Contains(patched.Graph.Output, o => o.Name == "present.0.ortsparse_summary");

        var first = prefill.Feeds(seed: 21);
        var expectedFirst = ContribModels.Run(model, first, withOrtSparse: false);
        var actualFirst = ContribModels.Run(patched, first, withOrtSparse: true);
        ContribModels.AssertMatches(expectedFirst, actualFirst, (_, _, _) => true, "loki prefill");
        Assert.Equal([2, 4, 6, 16], actualFirst["present.0.ortsparse_summary"].Shape);

        var decode = prefill with { QueryLength = 1 };
        var next = decode.Feeds(seed: 22, pastLength: 6).Where(f => !f.Name.StartsWith("past_key_values", StringComparison.Ordinal)).ToList();
        var expectedNext = ContribModels.Run(model, [.. next,
            Feed.From("past_key_values.0.key", TensorProto.Types.DataType.Float, expectedFirst["present.0.key"]),
            Feed.From("past_key_values.0.value", TensorProto.Types.DataType.Float, expectedFirst["present.0.value"])], withOrtSparse: false);
        var actualNext = ContribModels.Run(patched, [.. next,
            Feed.From("past_key_values.0.key", TensorProto.Types.DataType.Float, actualFirst["present.0.key"]),
            Feed.From("past_key_values.0.value", TensorProto.Types.DataType.Float, actualFirst["present.0.value"]),
            Feed.From("past_key_values.0.ortsparse_summary", TensorProto.Types.DataType.Float, actualFirst["present.0.ortsparse_summary"])], withOrtSparse: true);
        ContribModels.AssertMatches(expectedNext, actualNext, (_, _, _) => true, "loki decode");
        Assert.Equal([2, 4, 7, 16], actualNext["present.0.ortsparse_summary"].Shape);
    }

    [Fact]
    public void InspectDescribesTheSiteAndTheFusion()
    {
        var fused = new MultiHeadAttentionCase { Batch = 2, QueryLength = 4, PastLength = 5, KeyPaddingMask = true, AttentionBias = true, RotaryDim = 16 }.BuildModel();
        var (code, output) = GroupQueryAttentionTests.Inspect(fused);
        Assert.Equal(CliApp.Ok, code);
        Assert.Contains("com.microsoft.MultiHeadAttention", output);
        Assert.Contains("replace with com.ortsparse.SparseAttention", output);
        Assert.Contains("rotary embedding fused: SparseAttention applies RotaryEmbedding nodes '/model/layers.0/attn/query_rotary' and " +
            "'/model/layers.0/attn/key_rotary' (do_rotary = 1), which are removed", output);
        Assert.Contains("key_padding_mask: converted to an additive attention_mask (mask_filter_value -10000 where it is 0)", output);
        var site = Assert.Single(AttentionSiteFinder.Find(fused));
        Assert.Equal((4, 4, 16), (site.NumHeads!.Value, site.KvNumHeads!.Value, site.HeadDim!.Value));
        Assert.Equal(["query_in", "key_in", "value"], site.QueryKeyValue); // what calibrate captures: the keys before rotation

        var withBias = new MultiHeadAttentionCase { QueryLength = 2, PastLength = 5, Bias = true, RotaryDim = 16 }.BuildModel();
        Assert.Contains("rotary embedding not fused (SparseAttention reads the rotated query and key): " +
            "MultiHeadAttention adds its bias to the query and key after their rotation", GroupQueryAttentionTests.Inspect(withBias).Output);
        Assert.Contains("bias: a Split and three Adds add it to Q, K and V before SparseAttention", GroupQueryAttentionTests.Inspect(withBias).Output);
        Assert.Null(Assert.Single(AttentionSiteFinder.Find(withBias)).QueryKeyValue); // the biased Q, K and V exist only after the rewrite
    }

    [Fact]
    public void ExplainsRotaryEmbeddingsItCannotFuse()
    {
        var model = new MultiHeadAttentionCase { PastLength = 4, RotaryDim = 16 }.BuildModel();
        model.Graph.Node[1].Attribute.Add(OnnxBuilder.IntAttribute("interleaved", 1));
        var site = Assert.Single(AttentionSiteFinder.Find(model));
        Assert.True(site.CanReplace);
        Assert.Equal("rotary embedding not fused (SparseAttention reads the rotated query and key): " +
            "the query and key RotaryEmbedding nodes differ in interleaved or rotary_embedding_dim", Assert.Single(site.Notes));
        var patched = ContribModels.Patch(model, "MultiHeadAttention");
        Assert.Equal(2, patched.Graph.Node.Count(n => n.OpType == "RotaryEmbedding"));
    }

    public static TheoryData<string, string> Refusals() => new()
    {
        { "packed_qkv", "packed QKV (a query without key and value) is not supported; give Q, K and V separately" },
        { "cross_cache", "key is 4-D [batch, num_heads, kv_sequence_length, head_size], a precomputed cross-attention cache; SparseAttention takes new keys and values [batch, kv_sequence_length, hidden_size]" },
        { "past_sequence_length", "past_sequence_length (input 8: past and present sharing one buffer) is not supported; MultiHeadAttention's concat-mode cache is" },
        { "cache_indirection", "cache_indirection (input 9, beam search over a shared cache) is not supported" },
        { "qk", "qk (output 3) is used; SparseAttention does not expose attention scores" },
        { "key_lengths", "key_padding_mask of shape [batch] or [3·batch + 2] (key lengths) is not supported; give a [batch, total_sequence_length] 0/1 mask" },
    };

    [Theory]
    [MemberData(nameof(Refusals))]
    public void RefusesWhatSparseAttentionCannotDo(string feature, string reason)
    {
        var model = new MultiHeadAttentionCase { PastLength = 4 }.BuildModel();
        var node = model.Graph.Node.Single();
        void Input(int index, string name, TensorProto.Types.DataType type, params Dim[] shape)
        {
            while (node.Input.Count <= index)
            {
                node.Input.Add("");
            }
            node.Input[index] = name;
            model.Graph.Input.Add(OnnxBuilder.TensorValueInfo(name, type, shape));
        }
        switch (feature)
        {
            case "packed_qkv":
                node.Input[1] = "";
                node.Input[2] = "";
                break;
            case "cross_cache":
                model.Graph.Input.Single(i => i.Name == "key").Type.TensorType.Shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = 16 });
                break;
            case "past_sequence_length":
                Input(8, "past_sequence_length", TensorProto.Types.DataType.Int32, 1);
                break;
            case "cache_indirection":
                Input(9, "cache_indirection", TensorProto.Types.DataType.Int32, 1, 1, 64);
                break;
            case "qk":
                node.Output.Add("qk");
                break;
            case "key_lengths":
                Input(4, "key_lengths", TensorProto.Types.DataType.Int32, 1);
                break;
        }

        var site = Assert.Single(AttentionSiteFinder.Find(model));
        Assert.Equal(reason, site.UnsupportedReason);
        Assert.Contains($"cannot replace: {reason}", GroupQueryAttentionTests.Inspect(model).Output);
        var error = Assert.Throws<PatchException>(() => ModelPatcher.Patch(model));
        Assert.Equal($"Cannot replace com.microsoft.MultiHeadAttention node '/model/layers.0/attn/MultiHeadAttention': {reason}. " +
            "Pass --leave-unsupported to keep such sites as they are.", error.Message);
    }
}
