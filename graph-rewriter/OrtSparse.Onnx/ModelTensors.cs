using Onnx;

namespace OrtSparse.Onnx;

/// <summary>A tensor stored in a model.</summary>
/// <param name="Tensor">The tensor.</param>
/// <param name="Movable">
/// Whether saving may move its data to or from external data by size: true for initializers and
/// attribute tensors (what ONNX tools externalize), false for the parts of sparse tensors.
/// </param>
internal readonly record struct StoredTensor(TensorProto Tensor, bool Movable);

/// <summary>Finds every tensor of a model, subgraphs, functions and training graphs included.</summary>
internal static class ModelTensors
{
    /// <summary>The tensors in a fixed order, so that a model and its clone list matching tensors at matching positions.</summary>
    public static IEnumerable<StoredTensor> All(ModelProto model)
    {
        var graphs = new[] { model.Graph }
            .Concat(model.TrainingInfo.SelectMany(t => new[] { t.Initialization, t.Algorithm }))
            .Where(g => g is not null);
        return graphs.SelectMany(InGraph).Concat(model.Functions.SelectMany(f => f.Node).SelectMany(InNode));
    }

    private static IEnumerable<StoredTensor> InGraph(GraphProto graph) =>
        graph.Initializer.Select(t => new StoredTensor(t, Movable: true))
            .Concat(graph.SparseInitializer.SelectMany(InSparse))
            .Concat(graph.Node.SelectMany(InNode));

    private static IEnumerable<StoredTensor> InNode(NodeProto node) => node.Attribute.SelectMany(InAttribute);

    private static IEnumerable<StoredTensor> InAttribute(AttributeProto attribute) =>
        new[] { attribute.T }.Where(t => t is not null).Concat(attribute.Tensors).Select(t => new StoredTensor(t, Movable: true))
            .Concat(new[] { attribute.SparseTensor }.Where(s => s is not null).Concat(attribute.SparseTensors).SelectMany(InSparse))
            .Concat(new[] { attribute.G }.Where(g => g is not null).Concat(attribute.Graphs).SelectMany(InGraph));

    private static IEnumerable<StoredTensor> InSparse(SparseTensorProto sparse) =>
        new[] { sparse.Values, sparse.Indices }.Where(t => t is not null).Select(t => new StoredTensor(t, Movable: false));
}
