using Onnx;
using OrtSparse.Onnx;

namespace OrtSparse.GraphRewriter;

/// <summary>
/// The small ONNX-domain nodes and constants a rewrite puts before or after a SparseAttention node
/// (layout changes, splits, mask conversions), named under the site's node name and written for
/// the model's ONNX opset.
/// </summary>
internal sealed class GraphGlue
{
    private readonly GraphProto _graph;
    private readonly NameAllocator _names;
    private readonly string _prefix;
    private readonly long _opset;

    /// <summary>Glue for the site named <paramref name="siteName"/>.</summary>
    /// <param name="model">The model being patched; constants are added to its main graph.</param>
    /// <param name="names">Fresh names.</param>
    /// <param name="siteName">The site's node name, the prefix of every name handed out.</param>
    public GraphGlue(ModelProto model, NameAllocator names, string siteName)
    {
        _graph = model.Graph;
        _names = names;
        _prefix = $"{siteName}/ortsparse";
        _opset = Opsets.OnnxVersion(model) ?? Opsets.GlueVersion;
    }

    /// <summary>The nodes made so far, in the order they must run.</summary>
    public List<NodeProto> Nodes { get; } = [];

    /// <summary>A fresh value name for <paramref name="role"/>.</summary>
    public string Value(string role) => _names.Fresh($"{_prefix}/{role}");

    /// <summary>A 1-D int64 constant holding <paramref name="values"/>.</summary>
    public string Int64s(string role, params long[] values)
    {
        var name = Value(role);
        _graph.Initializer.Add(OnnxTensor.Create(name, values, values.Length));
        return name;
    }

    /// <summary>A 0-D int64 constant.</summary>
    public string Int64Scalar(string role, long value)
    {
        var name = Value(role);
        _graph.Initializer.Add(OnnxTensor.Create(name, [value]));
        return name;
    }

    /// <summary>A scalar constant of <paramref name="type"/> (float or float16).</summary>
    public string Scalar(string role, TensorProto.Types.DataType type, float value)
    {
        var name = Value(role);
        _graph.Initializer.Add(type == TensorProto.Types.DataType.Float16
            ? OnnxTensor.Create(name, [(Half)value])
            : OnnxTensor.Create(name, [value]));
        return name;
    }

    /// <summary>Adds one node with a single output, <paramref name="output"/> or a fresh value named for <paramref name="role"/>.</summary>
    public string Op(string opType, string role, IEnumerable<string> inputs, string? output = null, params AttributeProto[] attributes)
    {
        output ??= Value(role);
        Nodes.Add(OnnxBuilder.Node(opType, inputs, [output], attributes, _names.Fresh($"{_prefix}/{role}/{opType}")));
        return output;
    }

    /// <summary>Splits <paramref name="input"/> along <paramref name="axis"/> into parts of the given sizes.</summary>
    public IReadOnlyList<string> Split(string input, string role, long axis, IReadOnlyList<string> partRoles, params long[] sizes)
    {
        var outputs = partRoles.Select(Value).ToArray();
        var axisAttribute = OnnxBuilder.IntAttribute("axis", axis);
        var node = _opset >= 13
            ? OnnxBuilder.Node("Split", [input, Int64s($"{role}_sizes", sizes)], outputs, [axisAttribute])
            : OnnxBuilder.Node("Split", [input], outputs, [axisAttribute, OnnxBuilder.IntsAttribute("split", sizes)]);
        node.Name = _names.Fresh($"{_prefix}/{role}/Split");
        Nodes.Add(node);
        return outputs;
    }

    /// <summary>Inserts axes of size 1 at <paramref name="axes"/>.</summary>
    public string Unsqueeze(string input, string role, params long[] axes) => _opset >= 13
        ? Op("Unsqueeze", role, [input, Int64s($"{role}_axes", axes)])
        : Op("Unsqueeze", role, [input], attributes: OnnxBuilder.IntsAttribute("axes", axes));

    /// <summary>[B, H, S, D] → [B, S, H·D].</summary>
    public string HeadsToHidden(string input, string role, string? output = null)
    {
        var transposed = Op("Transpose", $"{role}_bshd", [input], attributes: OnnxBuilder.IntsAttribute("perm", 0, 2, 1, 3));
        return Op("Reshape", $"{role}_bsh", [transposed, Int64s($"{role}_bsh_shape", 0, 0, -1)], output);
    }

    /// <summary>[B, S, H·D] → [B, H, S, D] for <paramref name="heads"/> heads.</summary>
    public string HiddenToHeads(string input, string role, int heads, string? output = null)
    {
        var split = Op("Reshape", $"{role}_bshd", [input, Int64s($"{role}_bshd_shape", 0, 0, heads, -1)]);
        return Op("Transpose", $"{role}_bhsd", [split], output, OnnxBuilder.IntsAttribute("perm", 0, 2, 1, 3));
    }
}
