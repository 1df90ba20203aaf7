using Google.Protobuf;
using Onnx;
using AttributeType = Onnx.AttributeProto.Types.AttributeType;
using DataType = Onnx.TensorProto.Types.DataType;

namespace OrtSparse.Onnx;

/// <summary>Short-hands for building nodes, attributes, value infos, graphs and models.</summary>
public static class OnnxBuilder
{
    /// <summary>The IR version <see cref="Model"/> writes unless told otherwise: IR 10, read by ONNX Runtime 1.17 and later.</summary>
    public const long DefaultIrVersion = 10;

    /// <summary>A node calling <paramref name="opType"/>.</summary>
    /// <param name="opType">The operator, e.g. "MatMul".</param>
    /// <param name="inputs">Input value names; "" for an omitted optional input.</param>
    /// <param name="outputs">Output value names.</param>
    /// <param name="attributes">Attributes, e.g. from <see cref="IntAttribute"/>.</param>
    /// <param name="name">The node name.</param>
    /// <param name="domain">The operator domain; "" for the default ONNX domain.</param>
    public static NodeProto Node(string opType, IEnumerable<string> inputs, IEnumerable<string> outputs,
        IEnumerable<AttributeProto>? attributes = null, string name = "", string domain = "")
    {
        var node = new NodeProto { OpType = opType, Name = name, Domain = domain };
        node.Input.Add(inputs);
        node.Output.Add(outputs);
        node.Attribute.Add(attributes ?? []);
        return node;
    }

    /// <summary>An INT attribute.</summary>
    /// <param name="name">The attribute name.</param>
    /// <param name="value">The value.</param>
    public static AttributeProto IntAttribute(string name, long value) => new() { Name = name, Type = AttributeType.Int, I = value };

    /// <summary>A FLOAT attribute.</summary>
    /// <inheritdoc cref="IntAttribute"/>
    public static AttributeProto FloatAttribute(string name, float value) => new() { Name = name, Type = AttributeType.Float, F = value };

    /// <summary>A STRING attribute (stored as UTF-8).</summary>
    /// <inheritdoc cref="IntAttribute"/>
    public static AttributeProto StringAttribute(string name, string value) =>
        new() { Name = name, Type = AttributeType.String, S = ByteString.CopyFromUtf8(value) };

    /// <summary>A TENSOR attribute, e.g. the value of a Constant node.</summary>
    /// <inheritdoc cref="IntAttribute"/>
    public static AttributeProto TensorAttribute(string name, TensorProto value) => new() { Name = name, Type = AttributeType.Tensor, T = value };

    /// <summary>A GRAPH attribute, e.g. a branch of an If node.</summary>
    /// <inheritdoc cref="IntAttribute"/>
    public static AttributeProto GraphAttribute(string name, GraphProto value) => new() { Name = name, Type = AttributeType.Graph, G = value };

    /// <summary>An INTS attribute.</summary>
    /// <param name="name">The attribute name.</param>
    /// <param name="values">The values.</param>
    public static AttributeProto IntsAttribute(string name, params IEnumerable<long> values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeType.Ints };
        attribute.Ints.Add(values);
        return attribute;
    }

    /// <summary>A FLOATS attribute.</summary>
    /// <inheritdoc cref="IntsAttribute"/>
    public static AttributeProto FloatsAttribute(string name, params IEnumerable<float> values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeType.Floats };
        attribute.Floats.Add(values);
        return attribute;
    }

    /// <summary>A STRINGS attribute (each stored as UTF-8).</summary>
    /// <inheritdoc cref="IntsAttribute"/>
    public static AttributeProto StringsAttribute(string name, params IEnumerable<string> values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeType.Strings };
        attribute.Strings.Add(values.Select(ByteString.CopyFromUtf8));
        return attribute;
    }

    /// <summary>The declaration of a tensor value: element type and shape.</summary>
    /// <param name="name">The value name.</param>
    /// <param name="elementType">The element type.</param>
    /// <param name="shape">One <see cref="Dim"/> per axis (empty for a scalar), or null for an unknown rank.</param>
    public static ValueInfoProto TensorValueInfo(string name, DataType elementType, IEnumerable<Dim>? shape)
    {
        var tensorType = new TypeProto.Types.Tensor { ElemType = (int)elementType };
        if (shape is not null)
        {
            tensorType.Shape = new TensorShapeProto();
            foreach (var dim in shape)
            {
                tensorType.Shape.Dim.Add(ToProto(dim));
            }
        }
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensorType } };
    }

    /// <summary>An operator set import.</summary>
    /// <param name="domain">The domain; "" for the default ONNX domain.</param>
    /// <param name="version">The operator set version.</param>
    public static OperatorSetIdProto Opset(string domain, long version) => new() { Domain = domain, Version = version };

    /// <summary>A graph.</summary>
    /// <param name="name">The graph name.</param>
    /// <param name="nodes">The nodes, in topological order.</param>
    /// <param name="inputs">The graph inputs.</param>
    /// <param name="outputs">The graph outputs.</param>
    /// <param name="initializers">Constant tensors, named like the values they provide.</param>
    public static GraphProto Graph(string name, IEnumerable<NodeProto> nodes, IEnumerable<ValueInfoProto> inputs,
        IEnumerable<ValueInfoProto> outputs, IEnumerable<TensorProto>? initializers = null)
    {
        var graph = new GraphProto { Name = name };
        graph.Node.Add(nodes);
        graph.Input.Add(inputs);
        graph.Output.Add(outputs);
        graph.Initializer.Add(initializers ?? []);
        return graph;
    }

    /// <summary>A model around <paramref name="graph"/>.</summary>
    /// <param name="graph">The main graph.</param>
    /// <param name="opsets">The operator sets the graph uses.</param>
    /// <param name="irVersion">The IR version.</param>
    public static ModelProto Model(GraphProto graph, IEnumerable<OperatorSetIdProto> opsets, long irVersion = DefaultIrVersion)
    {
        var model = new ModelProto { IrVersion = irVersion, Graph = graph, ProducerName = "OrtSparse" };
        model.OpsetImport.Add(opsets);
        return model;
    }

    private static TensorShapeProto.Types.Dimension ToProto(Dim dim)
    {
        if (dim.Value < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(dim), dim.Value, "a fixed dimension cannot be negative");
        }
        var proto = new TensorShapeProto.Types.Dimension();
        if (dim.Value is { } value)
        {
            proto.DimValue = value;
        }
        else if (dim.Symbol is { } symbol)
        {
            proto.DimParam = symbol;
        }
        return proto;
    }
}
