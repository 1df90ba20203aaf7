using Onnx;

namespace OrtSparse.GraphRewriter;

/// <summary>What a graph declares about one value: element type and dims (null where unknown or symbolic).</summary>
/// <param name="ElementType">The tensor element type, or Undefined.</param>
/// <param name="Dims">One entry per axis: the fixed size, or null; null for an unknown rank.</param>
public sealed record ValueType(TensorProto.Types.DataType ElementType, IReadOnlyList<long?>? Dims)
{
    /// <summary>The rank, when known.</summary>
    public int? Rank => Dims?.Count;
}

/// <summary>
/// Element types and shapes the graph declares for its values (inputs, outputs, value_info,
/// initializers), completed by a light forward pass that infers the element type and rank of
/// undeclared node outputs for the ops that carry them through unchanged or predictably, and the
/// dims of those that keep their input's shape (exporters and ONNX Runtime's optimizer often leave
/// intermediate values without value_info).
/// </summary>
public sealed class GraphTypes
{
    private readonly Dictionary<string, ValueType> _types = new();

    /// <summary>Collects the declared types of <paramref name="graph"/>.</summary>
    /// <param name="graph">The main graph.</param>
    public GraphTypes(GraphProto graph)
    {
        foreach (var info in graph.Input.Concat(graph.Output).Concat(graph.ValueInfo))
        {
            if (info.Type?.TensorType is { } tensor)
            {
                _types[info.Name] = new ValueType((TensorProto.Types.DataType)tensor.ElemType,
                    tensor.Shape is null ? null : tensor.Shape.Dim.Select(d => d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue ? d.DimValue : (long?)null).ToList());
            }
        }
        foreach (var initializer in graph.Initializer)
        {
            _types[initializer.Name] = new ValueType((TensorProto.Types.DataType)initializer.DataType, initializer.Dims.Select(d => (long?)d).ToList());
        }
        var constants = graph.Initializer.ToDictionary(i => i.Name);
        foreach (var node in graph.Node)
        {
            if (node.Output.Count > 0 && node.Output[0].Length > 0 && !_types.ContainsKey(node.Output[0]) && Infer(node, constants) is { } inferred)
            {
                _types[node.Output[0]] = inferred;
            }
        }
    }

    private static readonly HashSet<string> SameShapeOps =
        ["Identity", "Cast", "Relu", "Neg", "Sqrt", "Reciprocal", "Exp", "Tanh", "Sigmoid", "Erf", "Gelu", "Cos", "Sin", "Softmax", "LayerNormalization", "RMSNormalization", "SimplifiedLayerNormalization", "Dropout", "RotaryEmbedding"];

    private static readonly HashSet<string> BroadcastOps = ["Add", "Sub", "Mul", "Div", "Pow", "Where"];

    private ValueType? Infer(NodeProto node, Dictionary<string, TensorProto> constants)
    {
        if (!Opsets.IsOnnxDomain(node.Domain) && node.Domain != "com.microsoft")
        {
            return null;
        }
        var inputs = node.Input.Select(i => i.Length > 0 ? Find(i) : null).ToList();
        var first = inputs.FirstOrDefault();
        // Element type: from the first input, except where the op says otherwise.
        var elementType = node.OpType switch
        {
            "Cast" => (TensorProto.Types.DataType)(node.Attribute("to")?.I ?? 0),
            "Where" => inputs.ElementAtOrDefault(1)?.ElementType ?? TensorProto.Types.DataType.Undefined,
            _ => first?.ElementType ?? TensorProto.Types.DataType.Undefined,
        };
        int? rank = node.OpType switch
        {
            _ when SameShapeOps.Contains(node.OpType) || node.OpType is "Transpose" or "Attention" => first?.Rank,
            "MatMul" when inputs.Count == 2 && inputs[0]?.Rank is { } a && inputs[1]?.Rank is { } b => Math.Max(a, b),
            _ when BroadcastOps.Contains(node.OpType) && inputs.All(i => i?.Rank is not null) => inputs.Max(i => i!.Rank),
            "Gather" when inputs.Count == 2 && inputs[0]?.Rank is { } data && inputs[1]?.Rank is { } indices => data + indices - 1,
            "Reshape" when node.Input.Count > 1 && constants.TryGetValue(node.Input[1], out var shape) && shape.Dims.Count == 1 => (int)shape.Dims[0],
            _ => null,
        };
        if (rank is null)
        {
            return null;
        }
        if (SameShapeOps.Contains(node.OpType) && first?.Dims is { } same)
        {
            return new ValueType(elementType, same);
        }
        var dims = Enumerable.Repeat<long?>(null, rank.Value).ToList();
        if (node.OpType == "MatMul" && inputs[1]?.Dims is { Count: >= 2 } weight)
        {
            dims[^1] = weight[^1]; // [..., M, K] x [K, N]: the last axis comes from the right operand
        }
        if (node.OpType == "Gather" && (node.Attribute("axis")?.I ?? 0) == 0 && inputs[0]?.Dims is { } table && inputs[1]?.Dims is { } lookups)
        {
            dims = [.. lookups, .. table.Skip(1)]; // an embedding lookup: [indices..., row...]
        }
        return new ValueType(elementType, dims);
    }

    /// <summary>The declared type of <paramref name="name"/>, or null when the graph says nothing about it.</summary>
    /// <param name="name">A value name.</param>
    public ValueType? Find(string name) => _types.TryGetValue(name, out var type) ? type : null;
}
