using Onnx;
using OrtSparse.Onnx;

namespace OrtSparse.GraphRewriter;

/// <summary>
/// <c>com.microsoft.MultiHeadAttention</c> (ONNX Runtime 1.29) with its cache in concat mode
/// (past_key/past_value [B, H, P, D], present = past followed by the new keys), as ONNX Runtime's
/// transformers optimizer emits it, and the <c>com.microsoft.RotaryEmbedding</c> nodes that often
/// feed its query and key, which move into the op. Inputs: query, key, value, bias,
/// key_padding_mask, attention_bias, past_key, past_value, past_sequence_length,
/// cache_indirection; outputs: output, present_key, present_value, qk. Every head has its own
/// keys: kv_num_heads = num_heads.
/// </summary>
internal sealed class MultiHeadAttentionForm : IAttentionForm
{
    private const int KeyInput = 1, ValueInput = 2, BiasInput = 3, KeyPaddingMaskInput = 4, AttentionBiasInput = 5, PastKeyInput = 6,
        PastValueInput = 7, PastSequenceLengthInput = 8, CacheIndirectionInput = 9;
    private const int PresentKeyOutput = 1, PresentValueOutput = 2, QkOutput = 3;
    private const string Kind = "com.microsoft.MultiHeadAttention";
    private const float DefaultMaskFilterValue = -10000f;

    public static MultiHeadAttentionForm Instance { get; } = new();

    private MultiHeadAttentionForm()
    {
    }

    public bool Matches(NodeProto node, GraphIndex graph) => node.OpType == "MultiHeadAttention" && node.Domain == Opsets.MicrosoftDomain;

    public AttentionSite Recognize(ModelProto model, int nodeIndex, GraphTypes types)
    {
        var node = model.Graph.Node[nodeIndex];
        var numHeads = SiteFacts.ToInt(node.IntAttribute("num_heads"));
        var query = node.OptionalInput(0) is { } q ? types.Find(q) : null;
        var elementType = query?.ElementType ?? TensorProto.Types.DataType.Undefined;
        int? headDim = numHeads is { } heads && query?.Dims is [_, _, { } hidden] && hidden % heads == 0
            ? SiteFacts.ToInt(hidden / heads)
            : node.OptionalInput(PastKeyInput) is { } past && types.Find(past)?.Dims is [_, _, _, { } cached] ? SiteFacts.ToInt(cached) : null;

        var problem = Problem(node, types, query, elementType, numHeads);
        var notes = new List<string>();
        IReadOnlyList<string>? queryKeyValue = null;
        if (problem is null)
        {
            var rotary = Rotary(model.Graph, node, types, numHeads!.Value, headDim);
            if (rotary.Note is { } note)
            {
                notes.Add(note);
            }
            if (node.OptionalInput(BiasInput) is null)
            {
                queryKeyValue = [rotary.Fusion?.Query ?? node.Input[0], rotary.Fusion?.Key ?? node.Input[KeyInput], node.Input[ValueInput]];
            }
            else
            {
                notes.Add("bias: a Split and three Adds add it to Q, K and V before SparseAttention");
            }
            if (node.OptionalInput(KeyPaddingMaskInput) is not null)
            {
                notes.Add($"key_padding_mask: converted to an additive attention_mask (mask_filter_value {MaskFilterValue(node)} where it is 0)");
            }
        }
        return new AttentionSite(nodeIndex, SiteFacts.Label(node, nodeIndex), Kind, 3, numHeads, numHeads, headDim,
            SiteFacts.ElementTypeName(elementType), node.OptionalInput(PastKeyInput), node.OptionalInput(PastValueInput),
            node.OptionalOutput(PresentKeyOutput), node.OptionalOutput(PresentValueOutput), problem)
        {
            Notes = notes,
            QueryKeyValue = queryKeyValue,
        };
    }

    public SiteRewrite Rewrite(ModelProto model, AttentionSite site, GraphTypes types, MethodConfig method, NameAllocator names, long rotaryPositions)
    {
        var node = model.Graph.Node[site.NodeIndex];
        var heads = site.NumHeads!.Value;
        var elementType = types.Find(node.Input[0])?.ElementType ?? TensorProto.Types.DataType.Undefined;
        var fusion = Rotary(model.Graph, node, types, heads, site.HeadDim).Fusion;
        var glue = new GraphGlue(model, names, site.NodeName);

        var (query, key, value) = (fusion?.Query ?? node.Input[0], fusion?.Key ?? node.Input[KeyInput], node.Input[ValueInput]);
        if (node.OptionalInput(BiasInput) is { } bias)
        {
            long hidden = (long)types.Find(node.Input[0])!.Dims![2]!, valueHidden = (long)types.Find(value)!.Dims![2]!;
            var parts = glue.Split(bias, "bias", 0, ["query_bias", "key_bias", "value_bias"], hidden, hidden, valueHidden);
            query = glue.Op("Add", "query_biased", [query, parts[0]]);
            key = glue.Op("Add", "key_biased", [key, parts[1]]);
            value = glue.Op("Add", "value_biased", [value, parts[2]]);
        }
        var inputs = new Dictionary<string, string> { ["query"] = query, ["key"] = key, ["value"] = value };
        SparseAttentionNode.AddIfGiven(inputs, "past_key", site.PastKey);
        SparseAttentionNode.AddIfGiven(inputs, "past_value", site.PastValue);
        SparseAttentionNode.AddIfGiven(inputs, "attention_mask", AttentionMask(node, types, elementType, glue));
        fusion?.Wire(inputs, glue);

        var outputs = new Dictionary<string, string> { ["output"] = node.Output[0] };
        SparseAttentionNode.AddIfGiven(outputs, "present_key", site.PresentKey);
        SparseAttentionNode.AddIfGiven(outputs, "present_value", site.PresentValue);

        var settings = new AttentionSettings(heads, heads, node.IntAttribute("unidirectional") == 1)
        {
            // MultiHeadAttention reads a scale of 0 as 1/√D, the op's default.
            Scale = node.FloatAttribute("scale") is > 0 and var scale ? scale : null,
            DoRotary = fusion is not null,
            RotaryInterleaved = fusion?.Interleaved ?? false,
        };
        return new SiteRewrite([.. glue.Nodes, SparseAttentionNode.Create(node, inputs, outputs, settings, method)],
            fusion?.Absorbed ?? new HashSet<int>());
    }

    /// <summary>
    /// SparseAttention's additive mask: key_padding_mask ([B, T] or [B, S, T], 0 = padding) as
    /// mask_filter_value where 0 and 0 elsewhere, shaped [B, 1, 1, T] or [B, 1, S, T], plus
    /// attention_bias ([B or 1, H or 1, S, T]). MultiHeadAttention adds both to the scaled scores
    /// the same way.
    /// </summary>
    private static string? AttentionMask(NodeProto node, GraphTypes types, TensorProto.Types.DataType elementType, GraphGlue glue)
    {
        var attentionBias = node.OptionalInput(AttentionBiasInput);
        if (node.OptionalInput(KeyPaddingMaskInput) is not { } padding)
        {
            return attentionBias;
        }
        var keep = glue.Op("Cast", "key_padding_keep", [padding], attributes: OnnxBuilder.IntAttribute("to", (long)TensorProto.Types.DataType.Bool));
        var additive = glue.Op("Where", "key_padding_additive",
            [keep, glue.Scalar("zero", elementType, 0), glue.Scalar("mask_filter_value", elementType, MaskFilterValue(node))]);
        var mask = types.Find(padding)!.Rank == 2
            ? glue.Unsqueeze(additive, "key_padding_b11t", 1, 2)
            : glue.Unsqueeze(additive, "key_padding_b1st", 1);
        return attentionBias is null ? mask : glue.Op("Add", "attention_mask", [mask, attentionBias]);
    }

    private static float MaskFilterValue(NodeProto node) => node.FloatAttribute("mask_filter_value") ?? DefaultMaskFilterValue;

    /// <summary>The rotary embedding feeding the query and key, fusable unless a bias is added after it.</summary>
    private static RotaryEmbeddingFusion.Outcome Rotary(GraphProto graph, NodeProto node, GraphTypes types, int numHeads, int? headDim) =>
        RotaryEmbeddingFusion.Analyze(graph, types, new RotaryTarget(node.Input[0], node.Input[KeyInput], numHeads, numHeads, headDim, 3),
            node.OptionalInput(BiasInput) is null ? null : "MultiHeadAttention adds its bias to the query and key after their rotation");

    /// <summary>Why the site cannot be replaced, or null.</summary>
    private static string? Problem(NodeProto node, GraphTypes types, ValueType? query, TensorProto.Types.DataType elementType, int? numHeads)
    {
        if (node.OptionalInput(0) is null)
        {
            return "MultiHeadAttention needs a query input";
        }
        if (numHeads is null)
        {
            return "num_heads must be set to a positive value";
        }
        if (node.OptionalInput(KeyInput) is null)
        {
            return "packed QKV (a query without key and value) is not supported; give Q, K and V separately";
        }
        if (node.OptionalInput(ValueInput) is null)
        {
            return "packed KV (a key without value) is not supported; give K and V separately";
        }
        if (query?.Rank is { } rank && rank != 3)
        {
            return $"query has rank {rank}; only [batch, sequence_length, hidden_size] queries are supported";
        }
        foreach (var (index, name) in new[] { (KeyInput, "key"), (ValueInput, "value") })
        {
            if (types.Find(node.Input[index])?.Rank is { } inputRank && inputRank != 3)
            {
                return inputRank == 4
                    ? $"{name} is 4-D [batch, num_heads, kv_sequence_length, head_size], a precomputed cross-attention cache; SparseAttention takes new keys and values [batch, kv_sequence_length, hidden_size]"
                    : $"{name} has rank {inputRank}; only [batch, kv_sequence_length, hidden_size] is supported";
            }
        }
        if ((node.OptionalInput(PastKeyInput) is null) != (node.OptionalInput(PastValueInput) is null))
        {
            return "past_key and past_value must be given together";
        }
        if (node.OptionalInput(PastSequenceLengthInput) is not null)
        {
            return "past_sequence_length (input 8: past and present sharing one buffer) is not supported; MultiHeadAttention's concat-mode cache is";
        }
        if (node.OptionalInput(CacheIndirectionInput) is not null)
        {
            return "cache_indirection (input 9, beam search over a shared cache) is not supported";
        }
        if (node.OptionalOutput(QkOutput) is not null)
        {
            return "qk (output 3) is used; SparseAttention does not expose attention scores";
        }
        if (SiteFacts.ElementTypeProblem(elementType) is { } type)
        {
            return type;
        }
        if (node.IntAttribute("unidirectional") is { } unidirectional && unidirectional is not (0 or 1))
        {
            return $"unidirectional ({unidirectional}) must be 0 or 1";
        }
        if (node.FloatAttribute("scale") is < 0 and var scale)
        {
            return $"scale ({scale}) must be positive (or 0 for 1/sqrt(head_size))";
        }
        if (node.OptionalInput(KeyPaddingMaskInput) is { } padding)
        {
            var paddingRank = types.Find(padding)?.Rank;
            if (paddingRank is not (2 or 3))
            {
                return paddingRank switch
                {
                    null => "the rank of key_padding_mask is unknown: give it a [batch, total_sequence_length] or [batch, sequence_length, total_sequence_length] shape",
                    1 => "key_padding_mask of shape [batch] or [3·batch + 2] (key lengths) is not supported; give a [batch, total_sequence_length] 0/1 mask",
                    _ => $"key_padding_mask has rank {paddingRank}; MultiHeadAttention takes rank 1, 2 or 3",
                };
            }
            if (elementType == TensorProto.Types.DataType.Undefined)
            {
                return "the element type of query is unknown, which the additive mask made of key_padding_mask needs";
            }
        }
        if (node.OptionalInput(BiasInput) is not null && (query?.Dims is not [_, _, { }] || types.Find(node.Input[ValueInput])?.Dims is not [_, _, { }]))
        {
            return "bias needs the static hidden sizes of query and value (dim 2) to split it into the Q, K and V biases";
        }
        return null;
    }
}
