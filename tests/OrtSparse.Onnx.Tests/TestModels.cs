using Onnx;
using static OrtSparse.Onnx.OnnxBuilder;
using DataType = Onnx.TensorProto.Types.DataType;

namespace OrtSparse.Onnx.Tests;

/// <summary>Small models built in memory for the tests.</summary>
internal static class TestModels
{
    /// <summary>y = x + weight + bias, where bias comes from a Constant node; weight has <paramref name="weightCount"/> elements.</summary>
    public static ModelProto AddWeights(int weightCount)
    {
        var weight = OnnxTensor.Create("weight", Sequence(weightCount), weightCount);
        var nodes = new[]
        {
            Node("Constant", [], ["bias"], [TensorAttribute("value", OnnxTensor.Create("bias_value", Sequence(weightCount, start: 1000), weightCount))], name: "make_bias"),
            Node("Add", ["x", "weight"], ["sum"], name: "add_weight"),
            Node("Add", ["sum", "bias"], ["y"], name: "add_bias"),
        };
        var graph = Graph("add_weights", nodes,
            [TensorValueInfo("x", DataType.Float, [weightCount])],
            [TensorValueInfo("y", DataType.Float, [weightCount])],
            [weight]);
        return Model(graph, [Opset("", 21)]);
    }

    public static float[] Sequence(int count, float start = 0) => Enumerable.Range(0, count).Select(i => start + i * 0.5f).ToArray();

    public static TensorProto Initializer(ModelProto model, string name) => model.Graph.Initializer.Single(t => t.Name == name);

    public static TensorProto ConstantValue(ModelProto model) => model.Graph.Node.Single(n => n.OpType == "Constant").Attribute[0].T;
}
