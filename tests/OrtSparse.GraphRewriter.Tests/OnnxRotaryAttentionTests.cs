using Microsoft.ML.OnnxRuntime;
using Onnx;
using OrtSparse.Onnx;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>
/// ONNX Attention fed by ONNX RotaryEmbedding nodes (opset 23), the form torch.onnx.export(dynamo=True,
/// opset_version=23) gives SDPA decoders, against the same model patched to SparseAttention with the
/// rotary embedding moved into the op. ONNX Runtime's own kernels are the reference where they run the
/// original; for cos/sin rows broadcast over the batch, which they reject, a plain-loop rotary embedding
/// and attention is (checked against ONNX Runtime where both run).
/// </summary>
public sealed class OnnxRotaryAttentionTests
{
    public static TheoryData<OnnxRotaryAttentionCase> RunnableCases() =>
    [
        // A position table: prefill into an empty cache, decode, a chunk after a cached prefix (3-D, partial rotary), interleaved.
        new OnnxRotaryAttentionCase { Batch = 2, QueryLength = 5 },
        new OnnxRotaryAttentionCase { Batch = 2, PastLength = 9, NumHeads = 6, KvNumHeads = 2 },
        new OnnxRotaryAttentionCase { QueryLength = 3, PastLength = 6, HeadDim = 32, RotaryDim = 16, Rank = 3 },
        new OnnxRotaryAttentionCase { Batch = 2, QueryLength = 2, PastLength = 4, Interleaved = true, Opset = 24 },
        // This step's rows for the whole batch, computed from position_ids: 4-D and 3-D, partial and interleaved.
        new OnnxRotaryAttentionCase { Batch = 2, QueryLength = 4, PastLength = 5, Tables = RotaryTables.StepRows },
        new OnnxRotaryAttentionCase { PastLength = 7, HeadDim = 32, RotaryDim = 16, Interleaved = true, Rank = 3, Tables = RotaryTables.StepRows },
    ];

    public static TheoryData<OnnxRotaryAttentionCase> BroadcastCases() =>
    [
        new OnnxRotaryAttentionCase { Batch = 2, QueryLength = 4, PastLength = 6, Tables = RotaryTables.BroadcastRows },
        new OnnxRotaryAttentionCase { Batch = 3, PastLength = 8, HeadDim = 32, RotaryDim = 16, Interleaved = true, Tables = RotaryTables.BroadcastRows },
        new OnnxRotaryAttentionCase { Batch = 2, QueryLength = 3, PastLength = 2, NumHeads = 2, KvNumHeads = 1, Rank = 3, Tables = RotaryTables.BroadcastRows, Opset = 24 },
    ];

    [Theory]
    [MemberData(nameof(RunnableCases))]
    public void DenseMatchesOnnxRuntime(OnnxRotaryAttentionCase attentionCase)
    {
        var model = attentionCase.BuildModel();
        var patched = Patch(model, "dense");
        var feeds = attentionCase.Feeds(seed: 17);
        var expected = ContribModels.Run(model, feeds, withOrtSparse: false);
        ContribModels.AssertMatches(expected, ContribModels.Run(patched, feeds, withOrtSparse: true), (_, _, _) => true, $"{attentionCase} dense");
    }

    /// <summary>The plain loops that judge the broadcast cases compute what ONNX Runtime's kernels compute on the cases both run.</summary>
    [Theory]
    [MemberData(nameof(RunnableCases))]
    public void ThePlainLoopReferenceAgreesWithOnnxRuntime(OnnxRotaryAttentionCase attentionCase)
    {
        var feeds = attentionCase.Feeds(seed: 19);
        var onnxRuntime = ContribModels.Run(attentionCase.BuildModel(), feeds, withOrtSparse: false);
        ContribModels.AssertMatches(attentionCase.Expected(feeds), onnxRuntime, (_, _, _) => true, $"{attentionCase} reference");
    }

    /// <summary>ONNX Runtime rejects the exporter's broadcast cos/sin; after the rewrite the model runs and equals the plain loops.</summary>
    [Theory]
    [MemberData(nameof(BroadcastCases))]
    public void BroadcastRowsRunAfterTheRewrite(OnnxRotaryAttentionCase attentionCase)
    {
        var model = attentionCase.BuildModel();
        var feeds = attentionCase.Feeds(seed: 23);
        var rejected = Assert.ThrowsAny<OnnxRuntimeException>(() => ContribModels.Run(model, feeds, withOrtSparse: false));
        Assert.Contains("Inputs 'cos_cache' and 'sin_cache' are expected to have the same shape as input 'x'", rejected.Message);
        var patched = Patch(model, "dense");
        ContribModels.AssertMatches(attentionCase.Expected(feeds), ContribModels.Run(patched, feeds, withOrtSparse: true), (_, _, _) => true,
            $"{attentionCase} dense");
    }

    /// <summary>With every key in budget a sparse method equals dense attention, rotary inside the op.</summary>
    [Fact]
    public void SparseMethodsWithTheWholeCacheInBudgetMatch()
    {
        var table = new OnnxRotaryAttentionCase { Batch = 2, PastLength = 9 };
        var feeds = table.Feeds(seed: 29);
        var expected = ContribModels.Run(table.BuildModel(), feeds, withOrtSparse: false);
        ContribModels.AssertMatches(expected, ContribModels.Run(Patch(table.BuildModel(), "topk", ContribModels.FullBudget()), feeds, withOrtSparse: true),
            (_, _, _) => true, "topk");

        var broadcast = new OnnxRotaryAttentionCase { Batch = 2, QueryLength = 3, PastLength = 6, Tables = RotaryTables.BroadcastRows };
        var broadcastFeeds = broadcast.Feeds(seed: 31);
        var quest = Patch(broadcast.BuildModel(), "quest", ContribModels.FullBudget(("page_size", 4)));
        var actual = ContribModels.Run(quest, broadcastFeeds, withOrtSparse: true);
        ContribModels.AssertMatches(broadcast.Expected(broadcastFeeds), actual, (_, _, _) => true, "quest");
        Assert.Equal([2, 2, 3, 32], actual["present_key.ortsparse_summary"].Shape); // ceil(9 / 4) pages of min and max per KV head
    }

    [Fact]
    public void TheRotaryEmbeddingMovesIntoTheOp()
    {
        var patched = Patch(new OnnxRotaryAttentionCase { PastLength = 3, HeadDim = 32, RotaryDim = 16, Interleaved = true, Rank = 3 }.BuildModel(), "dense");
        var node = Assert.Single(patched.Graph.Node);
        Assert.Equal(["query_in", "key_in", "value", "past_key", "past_value", "", "", "cos_cache", "sin_cache", "position_ids"], node.Input);
        Assert.Equal(["output", "present_key", "present_value"], node.Output);
        long Int(string name) => node.Attribute.Single(a => a.Name == name).I;
        Assert.Equal((4, 2, 1, 1, 1), (Int("num_heads"), Int("kv_num_heads"), Int("is_causal"), Int("do_rotary"), Int("rotary_interleaved")));

        // Rows of this step become a table indexed row by row; 4-D inputs go to [B, S, H·D] and the output back.
        var rows = Patch(new OnnxRotaryAttentionCase { Batch = 2, QueryLength = 3, Tables = RotaryTables.BroadcastRows }.BuildModel(), "dense");
        Assert.Equal(["Cast", "Unsqueeze", "Mul", "Cos", "Sin", "Transpose", "Reshape", "Transpose", "Reshape", "Transpose", "Reshape",
            "Reshape", "Reshape", "Shape", "ReduceProd", "Range", "Reshape", SparseAttentionOp.OpType, "Reshape", "Transpose"], rows.Graph.Node.Select(n => n.OpType));
        var attention = rows.Graph.Node.Single(n => n.OpType == SparseAttentionOp.OpType);
        string ProducerInput(string value) => rows.Graph.Node.Single(n => n.Output[0] == value).Input[0];
        Assert.Equal("query_in", ProducerInput(ProducerInput(attention.Input[0]))); // Transpose and Reshape to [B, S, H·D]
        Assert.Equal(["cos", "sin"], attention.Input.Skip(7).Take(2).Select(ProducerInput)); // Reshape to a table
        Assert.Equal(23, Assert.Single(rows.OpsetImport, o => o.Domain == "").Version);
    }

    [Fact]
    public void InspectDescribesTheFusion()
    {
        var broadcast = new OnnxRotaryAttentionCase { Batch = 2, QueryLength = 3, Tables = RotaryTables.BroadcastRows }.BuildModel();
        var output = GroupQueryAttentionTests.Inspect(broadcast).Output;
        Assert.Contains("onnx.Attention-23", output);
        Assert.Contains("rotary embedding fused: SparseAttention applies RotaryEmbedding nodes '/layers.0/attn/query_rotary' and " +
            "'/layers.0/attn/key_rotary' (do_rotary = 1), which are removed; their cos/sin rows of this step ([batch or 1, sequence_length, R/2]) " +
            "become a table the op indexes row by row", output);
        var site = Assert.Single(AttentionSiteFinder.Find(broadcast));
        Assert.Equal(["query_in", "key_in", "value"], site.QueryKeyValue); // what calibrate captures: the keys before rotation
    }

    public static TheoryData<string, string> NotFused() => new()
    {
        { "num_heads", "the key RotaryEmbedding's num_heads (4) differs from the attention's key heads (2)" },
        { "rotary_dim", "RotaryEmbedding rotates 32 dims (rotary_embedding_dim, or the head size when 0) but cos_cache holds 16 (2·its last dim); SparseAttention takes the rotary size from cos_cache" },
        { "unknown_rows", "the shape of cos_cache is unknown: without position_ids give it a [batch, sequence_length, rotary_dim / 2] shape with a static last dimension" },
        { "other_cos", "the query and key RotaryEmbedding nodes read different position_ids, cos_cache or sin_cache" },
        { "key_only", "only the key comes from a RotaryEmbedding node" },
    };

    /// <summary>A rotary embedding the op cannot reproduce stays a node of its own (the site is still replaced); inspect says why.</summary>
    [Theory]
    [MemberData(nameof(NotFused))]
    public void ExplainsRotaryEmbeddingsItCannotFuse(string feature, string reason)
    {
        var attentionCase = new OnnxRotaryAttentionCase { Batch = 2, QueryLength = 2, PastLength = 3, HeadDim = 32, RotaryDim = 16, Rank = 3, Tables = RotaryTables.StepRows };
        var model = attentionCase.BuildModel();
        var graph = model.Graph;
        NodeProto Rotary(string role) => graph.Node.Single(n => n.Name == $"/layers.0/attn/{role}_rotary");
        switch (feature)
        {
            case "num_heads":
                Rotary("key").Attribute.Single(a => a.Name == "num_heads").I = 4;
                break;
            case "rotary_dim":
                foreach (var role in new[] { "query", "key" })
                {
                    Rotary(role).Attribute.Single(a => a.Name == "rotary_embedding_dim").I = 32;
                }
                break;
            case "unknown_rows":
                graph.ValueInfo.Clear();
                break;
            case "other_cos":
                graph.Node.Insert(graph.Node.IndexOf(Rotary("key")), OnnxBuilder.Node("Identity", ["cos"], ["cos_copy"], name: "copy"));
                Rotary("key").Input[1] = "cos_copy";
                break;
            case "key_only":
                graph.Node.Remove(Rotary("query"));
                graph.Node.Single(n => n.OpType == "Attention").Input[0] = "query_in";
                break;
        }

        var site = Assert.Single(AttentionSiteFinder.Find(model));
        Assert.True(site.CanReplace);
        Assert.Equal($"rotary embedding not fused (SparseAttention reads the rotated query and key): {reason}", Assert.Single(site.Notes));
        var patched = ModelPatcher.Patch(model).Model;
        Assert.Contains(patched.Graph.Node, n => n.OpType == "RotaryEmbedding");
        Assert.DoesNotContain(patched.Graph.Node.Single(n => n.OpType == SparseAttentionOp.OpType).Attribute, a => a.Name == "do_rotary");
    }

    private static ModelProto Patch(ModelProto model, string method, IReadOnlyDictionary<string, double>? parameters = null)
    {
        var patched = ContribModels.Patch(model, "Attention", method, parameters);
        Assert.DoesNotContain(patched.Graph.Node, n => n.OpType == "RotaryEmbedding");
        return patched;
    }
}
