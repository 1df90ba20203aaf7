using Onnx;
using OrtSparse.Onnx;

namespace OrtSparse.GraphRewriter;

/// <summary>
/// The ONNX <c>Attention</c> operator (opset 23 and 24), as torch.onnx.export(dynamo=True) emits
/// for scaled_dot_product_attention. Inputs: Q, K, V, attn_mask, past_key, past_value,
/// nonpad_kv_seqlen (24); outputs: Y, present_key, present_value, qk_matmul_output.
/// </summary>
internal static class OnnxAttentionForm
{
    private const int MaskInput = 3, PastKeyInput = 4, PastValueInput = 5, NonpadKvSeqlenInput = 6;
    private const int PresentKeyOutput = 1, PresentValueOutput = 2, QkMatmulOutput = 3;

    public static bool Matches(NodeProto node) => node.OpType == "Attention" && Opsets.IsOnnxDomain(node.Domain);

    public static AttentionSite Recognize(ModelProto model, int nodeIndex, GraphTypes types)
    {
        var node = model.Graph.Node[nodeIndex];
        var opset = Opsets.OnnxVersion(model) ?? 0;
        var q = types.Find(node.Input[0]);
        var k = node.Input.Count > 1 ? types.Find(node.Input[1]) : null;
        var rank = q?.Rank ?? k?.Rank ?? 0;
        int? numHeads = (int?)node.IntAttribute("q_num_heads") ?? (rank == 4 ? ToInt(q?.Dims?[1]) : null);
        int? kvNumHeads = (int?)node.IntAttribute("kv_num_heads") ?? (rank == 4 ? ToInt(k?.Dims?[1]) : null);
        int? headDim = rank == 4 ? ToInt(q?.Dims?[3]) : rank == 3 && numHeads is > 0 && q?.Dims?[2] is { } hidden ? (int)(hidden / numHeads.Value) : null;
        var elementType = q?.ElementType ?? TensorProto.Types.DataType.Undefined;

        string? reason = null;
        if (node.Input.Count < 3 || node.Input.Take(3).Any(string.IsNullOrEmpty))
        {
            reason = "Attention needs Q, K and V inputs";
        }
        else if (opset < 23)
        {
            reason = $"Attention is defined from opset 23 on, but the model imports opset {opset}";
        }
        else if (node.OptionalOutput(QkMatmulOutput) is not null)
        {
            reason = "qk_matmul_output (output 3) is used; SparseAttention does not expose attention scores";
        }
        else if (node.OptionalInput(NonpadKvSeqlenInput) is not null)
        {
            reason = "nonpad_kv_seqlen (an external KV cache) is not supported yet";
        }
        else if ((node.OptionalInput(PastKeyInput) is null) != (node.OptionalInput(PastValueInput) is null))
        {
            reason = "past_key and past_value must be given together";
        }
        else if (elementType is not (TensorProto.Types.DataType.Float or TensorProto.Types.DataType.Float16 or TensorProto.Types.DataType.Undefined))
        {
            reason = $"element type {ElementTypeName(elementType)} is not supported (float, float16)";
        }
        else if (rank is not (3 or 4))
        {
            reason = rank == 0
                ? "the rank of Q is unknown: give the graph's inputs shapes or run shape inference first"
                : $"Q has rank {rank}; Attention takes rank 3 or 4";
        }
        else if (numHeads is null || kvNumHeads is null)
        {
            reason = "the number of query or key/value heads is unknown: set q_num_heads/kv_num_heads or give Q and K static head dims";
        }
        else if (numHeads <= 0 || kvNumHeads <= 0 || numHeads % kvNumHeads != 0)
        {
            reason = $"q_num_heads ({numHeads}) must be a positive multiple of kv_num_heads ({kvNumHeads})";
        }

        return new AttentionSite(nodeIndex, Label(node, nodeIndex), $"onnx.Attention-{(opset >= 24 ? 24 : 23)}", rank,
            numHeads, kvNumHeads, headDim, ElementTypeName(elementType),
            node.OptionalInput(PastKeyInput), node.OptionalInput(PastValueInput),
            node.OptionalOutput(PresentKeyOutput), node.OptionalOutput(PresentValueOutput), reason);
    }

    /// <summary>The nodes that replace the site: SparseAttention, with layout changes around it for 4-D inputs.</summary>
    public static List<NodeProto> Rewrite(NodeProto node, AttentionSite site, MethodConfig method, NameAllocator names, GraphProto graph)
    {
        var nodes = new List<NodeProto>();
        var prefix = site.NodeName;
        string ToBsh(string input, string role)
        {
            if (site.Rank == 3)
            {
                return input;
            }
            // [B, H, S, D] -> [B, S, H, D] -> [B, S, H·D]
            var transposed = names.Fresh($"{prefix}/ortsparse/{role}_bshd");
            nodes.Add(Node("Transpose", names.Fresh($"{prefix}/ortsparse/{role}_transpose"), [input], [transposed], OnnxBuilder.IntsAttribute("perm", 0, 2, 1, 3)));
            var flat = names.Fresh($"{prefix}/ortsparse/{role}_bsh");
            nodes.Add(Node("Reshape", names.Fresh($"{prefix}/ortsparse/{role}_reshape"), [transposed, ShapeConstant(graph, names, prefix, 0, 0, -1)], [flat]));
            return flat;
        }

        var query = ToBsh(node.Input[0], "query");
        var key = ToBsh(node.Input[1], "key");
        var value = ToBsh(node.Input[2], "value");

        var inputs = new string[SparseAttentionOp.InputIndex("attention_mask") + 1];
        Array.Fill(inputs, "");
        inputs[SparseAttentionOp.InputIndex("query")] = query;
        inputs[SparseAttentionOp.InputIndex("key")] = key;
        inputs[SparseAttentionOp.InputIndex("value")] = value;
        inputs[SparseAttentionOp.InputIndex("past_key")] = site.PastKey ?? "";
        inputs[SparseAttentionOp.InputIndex("past_value")] = site.PastValue ?? "";
        inputs[SparseAttentionOp.InputIndex("attention_mask")] = node.OptionalInput(MaskInput) ?? "";
        var usedInputs = inputs.Reverse().SkipWhile(string.IsNullOrEmpty).Reverse().ToArray();

        var output = site.Rank == 3 ? node.Output[0] : names.Fresh($"{prefix}/ortsparse/output_bsh");
        var outputs = new[] { output, site.PresentKey ?? "", site.PresentValue ?? "" }
            .Reverse().SkipWhile(string.IsNullOrEmpty).Reverse().ToArray();

        var attention = Node(SparseAttentionOp.OpType, node.Name, usedInputs, outputs,
            OnnxBuilder.IntAttribute("num_heads", site.NumHeads!.Value),
            OnnxBuilder.IntAttribute("kv_num_heads", site.KvNumHeads!.Value),
            OnnxBuilder.IntAttribute("is_causal", node.IntAttribute("is_causal") ?? 0));
        attention.Domain = SparseAttentionOp.Domain;
        attention.DocString = node.DocString;
        if (node.FloatAttribute("scale") is { } scale)
        {
            attention.Attribute.Add(OnnxBuilder.FloatAttribute("scale", scale));
        }
        if (node.FloatAttribute("softcap") is { } softcap && softcap != 0)
        {
            attention.Attribute.Add(OnnxBuilder.FloatAttribute("softcap", softcap));
        }
        attention.Attribute.Add(OnnxBuilder.StringAttribute("method", method.Method));
        foreach (var parameter in method.Spec.Parameters.Where(p => p.IsAttribute && method.Parameters.ContainsKey(p.Name)))
        {
            var setting = method.Parameters[parameter.Name];
            attention.Attribute.Add(parameter.Kind == ParameterKind.Int
                ? OnnxBuilder.IntAttribute(parameter.Name, (long)setting)
                : OnnxBuilder.FloatAttribute(parameter.Name, (float)setting));
        }
        nodes.Add(attention);

        if (site.Rank == 4)
        {
            // [B, S, H·Dv] -> [B, S, H, Dv] -> [B, H, S, Dv]
            var split = names.Fresh($"{prefix}/ortsparse/output_bshd");
            nodes.Add(Node("Reshape", names.Fresh($"{prefix}/ortsparse/output_reshape"), [output, ShapeConstant(graph, names, prefix, 0, 0, site.NumHeads!.Value, -1)], [split]));
            nodes.Add(Node("Transpose", names.Fresh($"{prefix}/ortsparse/output_transpose"), [split], [node.Output[0]], OnnxBuilder.IntsAttribute("perm", 0, 2, 1, 3)));
        }
        return nodes;
    }

    private static string ShapeConstant(GraphProto graph, NameAllocator names, string prefix, params long[] shape)
    {
        var name = names.Fresh($"{prefix}/ortsparse/shape_{string.Join("_", shape).Replace('-', 'm')}");
        var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64 };
        tensor.Dims.Add(shape.Length);
        tensor.Int64Data.Add(shape);
        graph.Initializer.Add(tensor);
        return name;
    }

    private static NodeProto Node(string opType, string name, string[] inputs, string[] outputs, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = opType, Name = name };
        node.Input.Add(inputs);
        node.Output.Add(outputs);
        node.Attribute.Add(attributes);
        return node;
    }

    private static int? ToInt(long? value) => value is { } v && v > 0 && v <= int.MaxValue ? (int)v : null;

    private static string Label(NodeProto node, int index) => node.Name.Length > 0 ? node.Name : $"Attention_{index}";

    internal static string ElementTypeName(TensorProto.Types.DataType type) => type switch
    {
        TensorProto.Types.DataType.Float => "float",
        TensorProto.Types.DataType.Float16 => "float16",
        TensorProto.Types.DataType.Bfloat16 => "bfloat16",
        TensorProto.Types.DataType.Double => "double",
        TensorProto.Types.DataType.Undefined => "unknown",
        _ => type.ToString().ToLowerInvariant(),
    };
}
