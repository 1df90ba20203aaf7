using Google.Protobuf;
using Onnx;
using static OrtSparse.Onnx.OnnxBuilder;

namespace OrtSparse.Onnx.Tests;

/// <summary>Compatibility with bytes written by other ONNX tools: unknown fields and the reference schema's encodings.</summary>
public sealed class WireFormatTests : IDisposable
{
    // Field 1000, length-delimited, "future": (1000 << 3) | 2 = 8002 = varint C2 3E.
    private static readonly byte[] UnknownBytesField = [0xC2, 0x3E, 6, (byte)'f', (byte)'u', (byte)'t', (byte)'u', (byte)'r', (byte)'e'];

    // Field 999, varint 150: (999 << 3) | 0 = 7992 = varint B8 3E; 150 = varint 96 01.
    private static readonly byte[] UnknownVarintField = [0xB8, 0x3E, 0x96, 0x01];

    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void UnknownFieldsOfModelAndNodeSurviveLoadEditSave()
    {
        var node = NodeProto.Parser.ParseFrom([.. Node("Relu", ["x"], ["y"], name: "relu").ToByteArray(), .. UnknownVarintField]);
        var model = Model(Graph("g", [node], [], []), [Opset("", 21)]);
        var input = _folder.File("in.onnx");
        File.WriteAllBytes(input, [.. model.ToByteArray(), .. UnknownBytesField]);

        var loaded = OnnxModel.Load(input);
        loaded.Proto.ProducerName = "edited";
        loaded.Proto.Graph.Node[0].Name = "relu_edited";
        var output = _folder.File("out.onnx");
        loaded.Save(output);

        var written = File.ReadAllBytes(output);
        Assert.True(Contains(written, UnknownBytesField));
        Assert.True(Contains(written, UnknownVarintField));
        var reloaded = OnnxModel.Load(output).Proto;
        Assert.Equal("edited", reloaded.ProducerName);
        Assert.EndsWith(Convert.ToHexString(UnknownVarintField), Convert.ToHexString(reloaded.Graph.Node[0].ToByteArray()));
        Assert.EndsWith(Convert.ToHexString(UnknownBytesField), Convert.ToHexString(reloaded.ToByteArray()));
    }

    [Fact]
    public void UnpackedRepeatedNumbersOfTheProto2SchemaAreRead()
    {
        // TensorProto with dims 2 and 3 written unpacked (tag 08 per value), as proto2 writers do.
        byte[] tensorBytes = [0x08, 2, 0x08, 3, 0x10, (byte)TensorProto.Types.DataType.Int64];
        var tensor = TensorProto.Parser.ParseFrom(tensorBytes);
        Assert.Equal(new long[] { 2, 3 }, tensor.Dims);

        // AttributeProto ints = [1, 5] unpacked (field 8: tag 40 each).
        var attribute = AttributeProto.Parser.ParseFrom([0x40, 1, 0x40, 5]);
        Assert.Equal(new long[] { 1, 5 }, attribute.Ints);
    }

    private static bool Contains(byte[] haystack, byte[] needle) => haystack.AsSpan().IndexOf(needle) >= 0;
}
