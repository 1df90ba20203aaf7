using Onnx;

namespace OrtSparse.GraphRewriter;

/// <summary>
/// <c>com.microsoft.GroupQueryAttention</c> (ONNX Runtime 1.29), as ONNX Runtime GenAI's model
/// builder and ONNX Runtime's transformers optimizer emit it. Inputs: query (or packed QKV), key,
/// value, past_key, past_value, seqlens_k, total_sequence_length, cos_cache, sin_cache,
/// position_ids, attention_bias, head_sink, k_scale, v_scale, q_norm_weight, k_norm_weight;
/// outputs: output, present_key, present_value, output_qk. SparseAttention's contract follows its
/// cache semantics (shared past/present buffers, seqlens_k, total_sequence_length, the rotary
/// embedding inside the op), so the inputs it supports map one to one; packed QKV gets a Split.
/// </summary>
internal sealed class GroupQueryAttentionForm : IAttentionForm
{
    private const int PastKeyInput = 3, PastValueInput = 4, SeqlensKInput = 5, TotalSequenceLengthInput = 6, CosCacheInput = 7,
        SinCacheInput = 8, PositionIdsInput = 9, AttentionBiasInput = 10, HeadSinkInput = 11, KScaleInput = 12, VScaleInput = 13,
        QNormWeightInput = 14, KNormWeightInput = 15;
    private const int KeyInput = 1, ValueInput = 2;
    private const int PresentKeyOutput = 1, PresentValueOutput = 2, OutputQkOutput = 3;
    private const string Kind = "com.microsoft.GroupQueryAttention";

    public static GroupQueryAttentionForm Instance { get; } = new();

    private GroupQueryAttentionForm()
    {
    }

    public bool Matches(NodeProto node, GraphIndex graph) => node.OpType == "GroupQueryAttention" && node.Domain == Opsets.MicrosoftDomain;

    public AttentionSite Recognize(ModelProto model, int nodeIndex, GraphTypes types)
    {
        var node = model.Graph.Node[nodeIndex];
        var numHeads = SiteFacts.ToInt(node.IntAttribute("num_heads"));
        var kvNumHeads = SiteFacts.ToInt(node.IntAttribute("kv_num_heads"));
        var query = node.OptionalInput(0) is { } q ? types.Find(q) : null;
        // The query's type may not be inferable (contrib ops before it); the cache has the same type.
        var elementType = query?.ElementType is { } known and not TensorProto.Types.DataType.Undefined ? known
            : node.OptionalInput(PastKeyInput) is { } past && types.Find(past)?.ElementType is { } cacheType ? cacheType
            : TensorProto.Types.DataType.Undefined;
        var packed = node.OptionalInput(KeyInput) is null && node.OptionalInput(ValueInput) is null;
        var headDim = HeadDim(node, types, query, packed, numHeads, kvNumHeads);

        return new AttentionSite(nodeIndex, SiteFacts.Label(node, nodeIndex), Kind, 3, numHeads, kvNumHeads, headDim,
            SiteFacts.ElementTypeName(elementType), node.OptionalInput(PastKeyInput), node.OptionalInput(PastValueInput),
            node.OptionalOutput(PresentKeyOutput), node.OptionalOutput(PresentValueOutput),
            Problem(node, types, query, elementType, packed, numHeads, kvNumHeads, headDim))
        {
            Notes = packed ? ["packed QKV: a Split divides query into Q, K and V before SparseAttention"] : [],
            QueryKeyValue = packed ? null : node.Input.Take(3).ToList(),
        };
    }

    public SiteRewrite Rewrite(ModelProto model, AttentionSite site, GraphTypes types, MethodConfig method, NameAllocator names, long rotaryPositions)
    {
        var node = model.Graph.Node[site.NodeIndex];
        int heads = site.NumHeads!.Value, kvHeads = site.KvNumHeads!.Value;
        var glue = new GraphGlue(model, names, site.NodeName);
        var inputs = new Dictionary<string, string>();
        if (node.OptionalInput(KeyInput) is null)
        {
            var d = site.HeadDim!.Value;
            var parts = glue.Split(node.Input[0], "qkv", 2, ["query", "key", "value"], heads * d, kvHeads * d, kvHeads * d);
            (inputs["query"], inputs["key"], inputs["value"]) = (parts[0], parts[1], parts[2]);
        }
        else
        {
            (inputs["query"], inputs["key"], inputs["value"]) = (node.Input[0], node.Input[KeyInput], node.Input[ValueInput]);
        }
        SparseAttentionNode.AddIfGiven(inputs, "past_key", site.PastKey);
        SparseAttentionNode.AddIfGiven(inputs, "past_value", site.PastValue);
        inputs["seqlens_k"] = node.Input[SeqlensKInput];
        inputs["total_sequence_length"] = node.Input[TotalSequenceLengthInput];
        var doRotary = node.IntAttribute("do_rotary") == 1;
        if (doRotary)
        {
            inputs["cos_cache"] = node.Input[CosCacheInput];
            inputs["sin_cache"] = node.Input[SinCacheInput];
            SparseAttentionNode.AddIfGiven(inputs, "position_ids", node.OptionalInput(PositionIdsInput));
        }
        // attention_bias is additive, [B or 1, Hq or 1, S, total_sequence_length], its columns the key
        // positions: exactly an additive attention_mask of SparseAttention.
        SparseAttentionNode.AddIfGiven(inputs, "attention_mask", node.OptionalInput(AttentionBiasInput));

        var outputs = new Dictionary<string, string> { ["output"] = node.Output[0] };
        SparseAttentionNode.AddIfGiven(outputs, "present_key", site.PresentKey);
        SparseAttentionNode.AddIfGiven(outputs, "present_value", site.PresentValue);

        // causal is 1 unless set (ONNX Runtime releases after 1.29 add the attribute).
        var settings = new AttentionSettings(heads, kvHeads, (node.IntAttribute("causal") ?? 1) == 1)
        {
            // GroupQueryAttention reads a scale of 0 as 1/√D, the op's default.
            Scale = node.FloatAttribute("scale") is > 0 and var scale ? scale : null,
            Softcap = node.FloatAttribute("softcap") ?? 0,
            // Both let the row at position p see the W positions (p − W, p] (ONNX Runtime 1.29's CPU kernel).
            LocalWindowSize = node.IntAttribute("local_window_size") is > 0 and var window ? window : null,
            DoRotary = doRotary,
            RotaryInterleaved = node.IntAttribute("rotary_interleaved") == 1,
        };
        return new SiteRewrite([.. glue.Nodes, SparseAttentionNode.Create(node, inputs, outputs, settings, method)], new HashSet<int>());
    }

    /// <summary>D: from query's hidden size (Q, K and V's for packed QKV), else from past_key or key.</summary>
    private static int? HeadDim(NodeProto node, GraphTypes types, ValueType? query, bool packed, int? numHeads, int? kvNumHeads)
    {
        if (numHeads is null || kvNumHeads is null)
        {
            return null;
        }
        var rows = packed ? numHeads.Value + 2 * kvNumHeads.Value : numHeads.Value;
        if (query?.Dims is [_, _, { } hidden] && hidden % rows == 0)
        {
            return SiteFacts.ToInt(hidden / rows);
        }
        if (node.OptionalInput(PastKeyInput) is { } past && types.Find(past)?.Dims is [_, _, _, { } cached])
        {
            return SiteFacts.ToInt(cached);
        }
        return node.OptionalInput(KeyInput) is { } key && types.Find(key)?.Dims is [_, _, { } keyHidden] && keyHidden % kvNumHeads.Value == 0
            ? SiteFacts.ToInt(keyHidden / kvNumHeads.Value)
            : null;
    }

    /// <summary>Why the site cannot be replaced, or null.</summary>
    private static string? Problem(NodeProto node, GraphTypes types, ValueType? query, TensorProto.Types.DataType elementType, bool packed,
        int? numHeads, int? kvNumHeads, int? headDim)
    {
        if (node.OptionalInput(0) is null)
        {
            return "GroupQueryAttention needs a query input";
        }
        if (numHeads is null || kvNumHeads is null)
        {
            return "num_heads and kv_num_heads must be set to positive values";
        }
        if (SiteFacts.HeadCountProblem(numHeads.Value, kvNumHeads.Value, "num_heads", "kv_num_heads") is { } heads)
        {
            return heads;
        }
        if ((node.OptionalInput(KeyInput) is null) != (node.OptionalInput(ValueInput) is null))
        {
            return "key and value must be given together (or neither, for packed QKV)";
        }
        if (node.OptionalInput(SeqlensKInput) is null || node.OptionalInput(TotalSequenceLengthInput) is null)
        {
            return "seqlens_k and total_sequence_length are required";
        }
        if ((node.OptionalInput(PastKeyInput) is null) != (node.OptionalInput(PastValueInput) is null))
        {
            return "past_key and past_value must be given together";
        }
        if (SiteFacts.ElementTypeProblem(elementType) is { } type)
        {
            return type;
        }
        if (query?.Rank is { } rank && rank != 3)
        {
            return $"query has rank {rank}; GroupQueryAttention takes [batch, sequence_length, hidden_size]";
        }
        if (QuantizedCache(node, types, elementType) is { } quantized)
        {
            return $"the KV cache is quantized ({quantized}); SparseAttention keeps keys and values in the query's element type";
        }
        if (node.OptionalInput(HeadSinkInput) is not null)
        {
            return "head_sink (input 11) is used; SparseAttention's softmax has no per-head sink logit";
        }
        if (node.IntAttribute("smooth_softmax") is { } smooth && smooth != 0)
        {
            return $"smooth_softmax = {smooth} adds 1 to the softmax denominator, which SparseAttention does not";
        }
        if (node.OptionalOutput(OutputQkOutput) is not null || node.IntAttribute("qk_output") is > 0)
        {
            return $"output_qk (qk_output = {node.IntAttribute("qk_output") ?? 0}) is used; SparseAttention does not expose attention scores";
        }
        if (node.OptionalInput(QNormWeightInput) is not null || node.OptionalInput(KNormWeightInput) is not null)
        {
            return "q_norm_weight/k_norm_weight (RMS normalization of Q and K inside the op) are not supported; keep the normalization before the node";
        }
        if (node.IntAttribute("sliding_window_cache") is { } ring && ring != 0)
        {
            return "sliding_window_cache = 1 (window-sized KV buffers the op evicts from) is not supported; SparseAttention's cache holds every position";
        }
        if (node.IntAttribute("causal") is { } causal && causal is not (0 or 1))
        {
            return $"causal ({causal}) must be 0 or 1";
        }
        if (node.FloatAttribute("scale") is < 0 and var scale)
        {
            return $"scale ({scale}) must be positive (or 0 for 1/sqrt(head_size))";
        }
        if (node.FloatAttribute("softcap") is < 0 and var softcap)
        {
            return $"softcap ({softcap}) must not be negative";
        }
        if (node.IntAttribute("local_window_size") is { } window && (window == 0 || window < -1))
        {
            return $"local_window_size ({window}) must be -1 (no window) or positive";
        }
        if (node.IntAttribute("do_rotary") is { } rotary && rotary is not (0 or 1))
        {
            return $"do_rotary ({rotary}) must be 0 or 1";
        }
        if ((node.OptionalInput(CosCacheInput) is null) != (node.OptionalInput(SinCacheInput) is null))
        {
            return "cos_cache and sin_cache must be given together";
        }
        if (node.IntAttribute("do_rotary") == 1 && node.OptionalInput(CosCacheInput) is null)
        {
            return "do_rotary = 1 needs cos_cache and sin_cache";
        }
        if (packed && headDim is null)
        {
            return $"packed QKV needs the head size to split query into Q, K and V: give query a static hidden size (dim 2, a multiple of num_heads + 2·kv_num_heads = {numHeads + 2 * kvNumHeads}) or past_key a static head size (dim 3)";
        }
        return null;
    }

    /// <summary>How the cache is quantized (a cache type other than the query's, scales, quantization attributes), or null.</summary>
    private static string? QuantizedCache(NodeProto node, GraphTypes types, TensorProto.Types.DataType elementType)
    {
        if (node.OptionalInput(PastKeyInput) is { } past && types.Find(past)?.ElementType is { } cacheType
            && cacheType != TensorProto.Types.DataType.Undefined && elementType != TensorProto.Types.DataType.Undefined && cacheType != elementType)
        {
            return $"past_key has element type {SiteFacts.ElementTypeName(cacheType)}";
        }
        if (node.OptionalInput(KScaleInput) is not null || node.OptionalInput(VScaleInput) is not null)
        {
            return "k_scale/v_scale are given";
        }
        foreach (var attribute in new[] { "k_quant_type", "v_quant_type" })
        {
            if (node.Attribute(attribute) is { } mode && mode.S.ToStringUtf8() is var text && text.Length > 0 && text != "NONE")
            {
                return $"{attribute} = '{text}'";
            }
        }
        return null;
    }
}
