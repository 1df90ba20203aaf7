using Onnx;

namespace OrtSparse.GraphRewriter;

/// <summary>Checks and descriptions every attention form shares when it recognises a site.</summary>
internal static class SiteFacts
{
    /// <summary>A positive dim that fits an int, else null.</summary>
    public static int? ToInt(long? value) => value is { } v && v > 0 && v <= int.MaxValue ? (int)v : null;

    /// <summary>The node's name, or a label made of its op type and index when it has none.</summary>
    public static string Label(NodeProto node, int index) => node.Name.Length > 0 ? node.Name : $"{node.OpType}_{index}";

    /// <summary>Why SparseAttention cannot take <paramref name="type"/> (float and float16 only; unknown passes), or null.</summary>
    public static string? ElementTypeProblem(TensorProto.Types.DataType type) =>
        type is TensorProto.Types.DataType.Float or TensorProto.Types.DataType.Float16 or TensorProto.Types.DataType.Undefined
            ? null
            : $"element type {ElementTypeName(type)} is not supported (float, float16)";

    /// <summary>Why known head counts cannot be used (not positive, or queries not grouped evenly over key/value heads), or null.</summary>
    public static string? HeadCountProblem(int numHeads, int kvNumHeads, string numHeadsName, string kvNumHeadsName) =>
        numHeads <= 0 || kvNumHeads <= 0 || numHeads % kvNumHeads != 0
            ? $"{numHeadsName} ({numHeads}) must be a positive multiple of {kvNumHeadsName} ({kvNumHeads})"
            : null;

    /// <summary>The ONNX name of an element type, e.g. "float16".</summary>
    public static string ElementTypeName(TensorProto.Types.DataType type) => type switch
    {
        TensorProto.Types.DataType.Float => "float",
        TensorProto.Types.DataType.Float16 => "float16",
        TensorProto.Types.DataType.Bfloat16 => "bfloat16",
        TensorProto.Types.DataType.Double => "double",
        TensorProto.Types.DataType.Undefined => "unknown",
        _ => type.ToString().ToLowerInvariant(),
    };

    /// <summary>How many times <paramref name="value"/> is read: by nodes of the graph (subgraphs included) and as a graph output.</summary>
    public static int Uses(GraphProto graph, string value) =>
        graph.Output.Count(o => o.Name == value) + NodeUses(graph.Node, value);

    private static int NodeUses(IEnumerable<NodeProto> nodes, string value) =>
        nodes.Sum(n => n.Input.Count(i => i == value)
            + n.Attribute.Where(a => a.G is not null).Sum(a => NodeUses(a.G.Node, value))
            + n.Attribute.Sum(a => a.Graphs.Sum(g => NodeUses(g.Node, value))));
}
