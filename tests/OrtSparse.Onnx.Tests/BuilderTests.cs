using Onnx;
using static OrtSparse.Onnx.OnnxBuilder;
using AttributeType = Onnx.AttributeProto.Types.AttributeType;
using DataType = Onnx.TensorProto.Types.DataType;

namespace OrtSparse.Onnx.Tests;

public sealed class BuilderTests
{
    [Fact]
    public void ValueInfoDeclaresFixedSymbolicAndUnknownDims()
    {
        var info = TensorValueInfo("q", DataType.Float16, ["batch", 32, Dim.Unknown]);

        var tensorType = info.Type.TensorType;
        Assert.Equal((int)DataType.Float16, tensorType.ElemType);
        Assert.Equal("batch", tensorType.Shape.Dim[0].DimParam);
        Assert.Equal(32, tensorType.Shape.Dim[1].DimValue);
        Assert.Equal(TensorShapeProto.Types.Dimension.ValueOneofCase.None, tensorType.Shape.Dim[2].ValueCase);
    }

    [Fact]
    public void ScalarAndUnknownRankDiffer()
    {
        Assert.Empty(TensorValueInfo("s", DataType.Int64, []).Type.TensorType.Shape.Dim);
        Assert.Null(TensorValueInfo("u", DataType.Int64, null).Type.TensorType.Shape);
        Assert.Throws<ArgumentOutOfRangeException>(() => TensorValueInfo("n", DataType.Int64, [-1]));
    }

    [Fact]
    public void NodesCarryTypedAttributes()
    {
        var node = Node("SparseAttention", ["q", "", "v"], ["out"],
            [IntAttribute("num_heads", 8), FloatAttribute("scale", 0.125f), StringAttribute("method", "dense"),
             IntsAttribute("window", 64, 4), FloatsAttribute("weights", 0.5f), TensorAttribute("table", OnnxTensor.Create("table", [1f], 1))],
            name: "attn", domain: "com.ortsparse");

        Assert.Equal(["q", "", "v"], node.Input);
        Assert.Equal("com.ortsparse", node.Domain);
        Assert.Equal([AttributeType.Int, AttributeType.Float, AttributeType.String, AttributeType.Ints, AttributeType.Floats, AttributeType.Tensor],
            node.Attribute.Select(a => a.Type));
        Assert.Equal(8, node.Attribute[0].I);
        Assert.Equal(0.125f, node.Attribute[1].F);
        Assert.Equal("dense", node.Attribute[2].S.ToStringUtf8());
        Assert.Equal([64L, 4L], node.Attribute[3].Ints);
    }

    [Fact]
    public void ModelHasIrVersionAndOpsets()
    {
        var model = Model(Graph("g", [], [], []), [Opset("", 21), Opset("com.ortsparse", 1)]);
        Assert.Equal(OnnxBuilder.DefaultIrVersion, model.IrVersion);
        Assert.Equal(["", "com.ortsparse"], model.OpsetImport.Select(o => o.Domain));
        Assert.Equal([21L, 1L], model.OpsetImport.Select(o => o.Version));
    }
}
