using Onnx;
using OrtSparse.Cli;
using OrtSparse.Onnx;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>
/// com.microsoft.GroupQueryAttention against the same model patched to SparseAttention: ONNX
/// Runtime's own CPU kernel is the reference for the output and the defined part of the caches
/// (dense, topk with a budget covering the cache, and quest with its state beside the cache); and
/// what inspect and patch say about sites they recognise or refuse.
/// </summary>
public sealed class GroupQueryAttentionTests
{
    public static TheoryData<GroupQueryAttentionCase> Cases() =>
    [
        // First prompts: no cache, then a shared buffer longer than the prompt; batch 2 right-padded.
        new GroupQueryAttentionCase { Lengths = [6], QueryLength = 6 },
        new GroupQueryAttentionCase { Lengths = [7, 4], QueryLength = 7, Capacity = 12 },
        // Decode steps with a shared buffer holding padding beyond seqlens_k; sequences of different lengths.
        new GroupQueryAttentionCase { Lengths = [9], Capacity = 16 },
        new GroupQueryAttentionCase { Lengths = [13, 6], Capacity = 16, NumHeads = 6, KvNumHeads = 2 },
        new GroupQueryAttentionCase { Lengths = [10, 10], Capacity = 10, NumHeads = 4, KvNumHeads = 1, HeadDim = 32 },
        // A chunk of a prompt after a cached prefix (GroupQueryAttention allows it for batch 1).
        new GroupQueryAttentionCase { Lengths = [11], QueryLength = 4, Capacity = 16 },
        // Rotary inside the op: full, partial, interleaved, with and without position_ids.
        new GroupQueryAttentionCase { Lengths = [6, 3], QueryLength = 6, Capacity = 8, RotaryDim = 16 },
        new GroupQueryAttentionCase { Lengths = [12, 7], Capacity = 16, RotaryDim = 16, PositionIds = true },
        new GroupQueryAttentionCase { Lengths = [9], QueryLength = 3, Capacity = 12, HeadDim = 32, RotaryDim = 16, Interleaved = true },
        new GroupQueryAttentionCase { Lengths = [5, 9], Capacity = 12, HeadDim = 32, RotaryDim = 32, Interleaved = true, PositionIds = true },
        // Sliding window, softcap, scale, attention_bias.
        new GroupQueryAttentionCase { Lengths = [14, 9], Capacity = 16, LocalWindow = 4 },
        new GroupQueryAttentionCase { Lengths = [8], QueryLength = 8, LocalWindow = 3 },
        new GroupQueryAttentionCase { Lengths = [10, 5], Capacity = 12, Softcap = 2.5f, Scale = 0.4f },
        new GroupQueryAttentionCase { Lengths = [9, 6], Capacity = 12, AttentionBias = true },
        new GroupQueryAttentionCase { Lengths = [7], QueryLength = 7, AttentionBias = true, RotaryDim = 16, LocalWindow = 5 },
        // Packed QKV, also in a graph that imports no ONNX opset (the Split brings one).
        new GroupQueryAttentionCase { Lengths = [8, 5], Capacity = 10, PackedQkv = true, RotaryDim = 16 },
        new GroupQueryAttentionCase { Lengths = [6], QueryLength = 6, PackedQkv = true, OnnxOpset = null },
    ];

    [Theory]
    [MemberData(nameof(Cases))]
    public void DenseMatchesOnnxRuntime(GroupQueryAttentionCase attentionCase) =>
        AssertPatchedMatches(attentionCase, "dense");

    public static TheoryData<GroupQueryAttentionCase, string> MethodCases() => new()
    {
        { new GroupQueryAttentionCase { Lengths = [13, 6], Capacity = 16 }, "topk" },
        { new GroupQueryAttentionCase { Lengths = [12, 7], Capacity = 16, RotaryDim = 16, PositionIds = true }, "topk" },
        { new GroupQueryAttentionCase { Lengths = [11], QueryLength = 4, Capacity = 16, LocalWindow = 6 }, "topk" },
        { new GroupQueryAttentionCase { Lengths = [13, 6], Capacity = 16 }, "quest" },
        { new GroupQueryAttentionCase { Lengths = [12, 7], Capacity = 16, RotaryDim = 16 }, "quest" },
    };

    /// <summary>With every key in budget a sparse method equals dense; quest rebuilds its state from the cache (an empty default).</summary>
    [Theory]
    [MemberData(nameof(MethodCases))]
    public void SparseMethodsWithTheWholeCacheInBudgetMatchOnnxRuntime(GroupQueryAttentionCase attentionCase, string method) =>
        AssertPatchedMatches(attentionCase, method, ContribModels.FullBudget(method == "quest" ? [("page_size", 4)] : []));

    private static void AssertPatchedMatches(GroupQueryAttentionCase attentionCase, string method, IReadOnlyDictionary<string, double>? parameters = null)
    {
        var model = attentionCase.BuildModel();
        var patched = ContribModels.Patch(model, "GroupQueryAttention", method, parameters);
        var feeds = attentionCase.Feeds(seed: 11);
        var expected = ContribModels.Run(model, feeds, withOrtSparse: false);
        var actual = ContribModels.Run(patched, feeds, withOrtSparse: true);
        ContribModels.AssertMatches(expected, actual, attentionCase.Defined, $"{attentionCase} {method}");
    }

    [Fact]
    public void QuestKeepsItsStateBesideTheSharedBufferCache()
    {
        var attentionCase = new GroupQueryAttentionCase { Lengths = [13, 6], Capacity = 16 };
        var patched = ContribModels.Patch(attentionCase.BuildModel(), "GroupQueryAttention", "quest", ContribModels.FullBudget(("page_size", 4)));
        var node = patched.Graph.Node.Single(n => n.OpType == SparseAttentionOp.OpType);
        Assert.Equal("past_key_values.0.ortsparse_summary", node.Input[SparseAttentionOp.InputIndex("past_summary")]);
        Assert.Equal("present.0.ortsparse_summary", node.Output[SparseAttentionOp.OutputNames.ToList().IndexOf("present_summary")]);
        Assert.Equal(["seqlens_k", "total_sequence_length"], node.Input.Skip(5).Take(2));

        // The state has the cache's capacity: ceil(16 / 4) pages of min and max (2·D) for each KV head.
        var outputs = ContribModels.Run(patched, attentionCase.Feeds(seed: 3), withOrtSparse: true);
        Assert.Equal([2, 2, 4, 32], outputs["present.0.ortsparse_summary"].Shape);
    }

    [Fact]
    public void MapsAttributesAndInputs()
    {
        var model = new GroupQueryAttentionCase
        {
            Lengths = [9], Capacity = 12, RotaryDim = 16, Interleaved = true, PositionIds = true, LocalWindow = 4, Softcap = 3, Scale = 0.5f, AttentionBias = true,
        }.BuildModel();
        var node = ContribModels.Patch(model, "GroupQueryAttention").Graph.Node.Single();
        Assert.Equal("/model/layers.0/attn/GroupQueryAttention", node.Name);
        Assert.Equal(["query", "key", "value", "past_key_values.0.key", "past_key_values.0.value", "seqlens_k", "total_sequence_length",
            "cos_cache", "sin_cache", "position_ids", "attention_bias"], node.Input);
        Assert.Equal(["output", "present.0.key", "present.0.value"], node.Output);
        long Int(string name) => node.Attribute.Single(a => a.Name == name).I;
        float Float(string name) => node.Attribute.Single(a => a.Name == name).F;
        Assert.Equal((4, 2, 1, 4, 1, 1), (Int("num_heads"), Int("kv_num_heads"), Int("is_causal"), Int("local_window_size"), Int("do_rotary"), Int("rotary_interleaved")));
        Assert.Equal((3f, 0.5f), (Float("softcap"), Float("scale")));
    }

    [Fact]
    public void PackedQkvIsSplitBeforeTheOp()
    {
        var patched = ContribModels.Patch(new GroupQueryAttentionCase { Lengths = [6], QueryLength = 6, PackedQkv = true, OnnxOpset = null }.BuildModel(),
            "GroupQueryAttention");
        Assert.Equal(["Split", SparseAttentionOp.OpType], patched.Graph.Node.Select(n => n.OpType));
        var split = patched.Graph.Node[0];
        Assert.Equal(split.Output, patched.Graph.Node[1].Input.Take(3));
        var sizes = patched.Graph.Initializer.Single(i => i.Name == split.Input[1]);
        Assert.Equal([64, 32, 32], OnnxTensor.ToInt64s(sizes));
        Assert.Contains(patched.OpsetImport, o => o.Domain == "" && o.Version == 17);
    }

    [Fact]
    public void InspectDescribesTheSite()
    {
        var model = new GroupQueryAttentionCase { Lengths = [8, 5], Capacity = 10, PackedQkv = true, RotaryDim = 16, LocalWindow = 4 }.BuildModel();
        var (code, output) = Inspect(model);
        Assert.Equal(CliApp.Ok, code);
        Assert.Contains("attention sites: 1", output);
        Assert.Contains("com.microsoft.GroupQueryAttention", output);
        Assert.Contains("past_key_values.0.key, past_key_values.0.value", output);
        Assert.Contains("replace with com.ortsparse.SparseAttention", output);
        Assert.Contains("packed QKV: a Split divides query into Q, K and V before SparseAttention", output);
        var site = Assert.Single(AttentionSiteFinder.Find(model));
        Assert.Equal((4, 2, 16, "float"), (site.NumHeads!.Value, site.KvNumHeads!.Value, site.HeadDim!.Value, site.ElementType));
        Assert.Null(site.QueryKeyValue); // packed: Q, K and V exist only after the Split
        Assert.Equal(["query", "key", "value"], Assert.Single(AttentionSiteFinder.Find(new GroupQueryAttentionCase { RotaryDim = 16, Capacity = 8 }.BuildModel())).QueryKeyValue);
    }

    public static TheoryData<string, string> Refusals() => new()
    {
        { "head_sink", "head_sink (input 11) is used; SparseAttention's softmax has no per-head sink logit" },
        { "smooth_softmax", "smooth_softmax = 1 adds 1 to the softmax denominator, which SparseAttention does not" },
        { "qk_output", "output_qk (qk_output = 1) is used; SparseAttention does not expose attention scores" },
        { "k_scale", "the KV cache is quantized (k_scale/v_scale are given); SparseAttention keeps keys and values in the query's element type" },
        { "uint8_cache", "the KV cache is quantized (past_key has element type uint8); SparseAttention keeps keys and values in the query's element type" },
        { "q_norm_weight", "q_norm_weight/k_norm_weight (RMS normalization of Q and K inside the op) are not supported; keep the normalization before the node" },
        { "sliding_window_cache", "sliding_window_cache = 1 (window-sized KV buffers the op evicts from) is not supported; SparseAttention's cache holds every position" },
        { "bfloat16", "element type bfloat16 is not supported (float, float16)" },
        { "packed_dynamic", "packed QKV needs the head size to split query into Q, K and V: give query a static hidden size (dim 2, a multiple of num_heads + 2·kv_num_heads = 8) or past_key a static head size (dim 3)" },
        { "rotary_without_cache", "do_rotary = 1 needs cos_cache and sin_cache" },
    };

    /// <summary>Each unsupported feature is named by inspect, fails patch, and is left alone with --leave-unsupported.</summary>
    [Theory]
    [MemberData(nameof(Refusals))]
    public void RefusesWhatSparseAttentionCannotDo(string feature, string reason)
    {
        var model = new GroupQueryAttentionCase { Lengths = [9], Capacity = 12, PackedQkv = feature == "packed_dynamic" }.BuildModel();
        var node = model.Graph.Node[0];
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
            case "head_sink":
                Input(11, "head_sink", TensorProto.Types.DataType.Float, 4);
                break;
            case "smooth_softmax":
                node.Attribute.Add(OnnxBuilder.IntAttribute("smooth_softmax", 1));
                break;
            case "qk_output":
                node.Attribute.Add(OnnxBuilder.IntAttribute("qk_output", 1));
                node.Output.Add("scores");
                break;
            case "k_scale":
                Input(12, "k_scale", TensorProto.Types.DataType.Float, 1);
                Input(13, "v_scale", TensorProto.Types.DataType.Float, 1);
                break;
            case "uint8_cache":
                model.Graph.Input.Single(i => i.Name == "past_key_values.0.key").Type.TensorType.ElemType = (int)TensorProto.Types.DataType.Uint8;
                break;
            case "q_norm_weight":
                Input(14, "q_norm", TensorProto.Types.DataType.Float, 16);
                Input(15, "k_norm", TensorProto.Types.DataType.Float, 16);
                break;
            case "sliding_window_cache":
                node.Attribute.Add(OnnxBuilder.IntAttribute("local_window_size", 8));
                node.Attribute.Add(OnnxBuilder.IntAttribute("sliding_window_cache", 1));
                break;
            case "bfloat16":
                model.Graph.Input.Single(i => i.Name == "query").Type.TensorType.ElemType = (int)TensorProto.Types.DataType.Bfloat16;
                break;
            case "packed_dynamic":
                foreach (var (input, axis) in new[] { ("qkv", 2), ("past_key_values.0.key", 3), ("past_key_values.0.value", 3) })
                {
                    model.Graph.Input.Single(i => i.Name == input).Type.TensorType.Shape.Dim[axis].DimParam = "size";
                }
                break;
            case "rotary_without_cache":
                node.Attribute.Add(OnnxBuilder.IntAttribute("do_rotary", 1));
                break;
        }

        var site = Assert.Single(AttentionSiteFinder.Find(model));
        Assert.Equal(reason, site.UnsupportedReason);
        Assert.Contains($"cannot replace: {reason}", Inspect(model).Output);
        var error = Assert.Throws<PatchException>(() => ModelPatcher.Patch(model));
        Assert.Equal($"Cannot replace com.microsoft.GroupQueryAttention node '/model/layers.0/attn/GroupQueryAttention': {reason}. " +
            "Pass --leave-unsupported to keep such sites as they are.", error.Message);
    }

    [Fact]
    public void LeavesARefusedSiteAsItIsWhenAsked()
    {
        var model = new GroupQueryAttentionCase { Lengths = [9], Capacity = 12 }.BuildModel();
        var refused = model.Graph.Node[0].Clone();
        refused.Name = "with_sink";
        refused.Input.Add(["", "", "", "", "head_sink"]); // input 11, after cos_cache … attention_bias
        refused.Output.Clear();
        refused.Output.Add(["output_2"]);
        model.Graph.Node.Add(refused);
        model.Graph.Input.Add(OnnxBuilder.TensorValueInfo("head_sink", TensorProto.Types.DataType.Float, [(Dim)4]));
        model.Graph.Output.Add(OnnxBuilder.TensorValueInfo("output_2", TensorProto.Types.DataType.Float, [(Dim)1, 1, 64]));

        var result = ModelPatcher.Patch(model, new PatchOptions { LeaveUnsupported = true });

        Assert.Equal("/model/layers.0/attn/GroupQueryAttention", Assert.Single(result.Replaced).NodeName);
        Assert.Equal("with_sink", Assert.Single(result.Left).NodeName);
        Assert.Equal([SparseAttentionOp.OpType, "GroupQueryAttention"], result.Model.Graph.Node.Select(n => n.OpType));
    }

    /// <summary>Runs <c>ortsparse inspect</c> on <paramref name="model"/> saved to a scratch file.</summary>
    internal static (int Code, string Output) Inspect(ModelProto model)
    {
        var folder = Directory.CreateTempSubdirectory("ortsparse-inspect-").FullName;
        try
        {
            var path = Path.Combine(folder, "model.onnx");
            File.WriteAllBytes(path, Google.Protobuf.MessageExtensions.ToByteArray(model));
            var stdout = new StringWriter();
            var stderr = new StringWriter();
            var code = CliApp.Run(["inspect", path], stdout, stderr);
            return (code, stdout + stderr.ToString());
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
