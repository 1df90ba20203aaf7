using Google.Protobuf;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace OrtSparse.Onnx.Tests;

public sealed class TensorHelperTests : IDisposable
{
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void CreatedTensorsReadBackFromRawData()
    {
        Assert.Equal(new[] { 1.5f, -2f, float.NaN, 0f, 7f, 8f }, OnnxTensor.ToFloats(OnnxTensor.Create("f", [1.5f, -2f, float.NaN, 0f, 7f, 8f], 2, 3)));
        Assert.Equal(new[] { (Half)1.5f, Half.NegativeInfinity }, OnnxTensor.ToHalfs(OnnxTensor.Create("h", [(Half)1.5f, Half.NegativeInfinity], 2)));
        Assert.Equal(new[] { int.MinValue, 0, int.MaxValue }, OnnxTensor.ToInt32s(OnnxTensor.Create("i", [int.MinValue, 0, int.MaxValue], 3, 1)));
        Assert.Equal(new[] { long.MinValue, long.MaxValue }, OnnxTensor.ToInt64s(OnnxTensor.Create("l", [long.MinValue, long.MaxValue], 2)));
        Assert.Equal(new[] { true, false, true }, OnnxTensor.ToBools(OnnxTensor.Create("b", [true, false, true], 3)));
        Assert.Equal(new[] { 42L }, OnnxTensor.ToInt64s(OnnxTensor.Create("scalar", [42L])));
    }

    [Fact]
    public void RawDataIsLittleEndianElementBytes()
    {
        var tensor = OnnxTensor.Create("x", [1, 0x01020304], 2);
        Assert.Equal(new byte[] { 1, 0, 0, 0, 4, 3, 2, 1 }, tensor.RawData.ToByteArray());
        Assert.Equal((int)DataType.Int32, tensor.DataType);
        Assert.Equal(new long[] { 2 }, tensor.Dims);
        Assert.Equal(new byte[] { 1, 0, 1 }, OnnxTensor.Create("b", [true, false, true], 3).RawData.ToByteArray());
    }

    [Fact]
    public void TypedFieldsReadLikeRawData()
    {
        Assert.Equal(new[] { 1f, 2f }, OnnxTensor.ToFloats(new TensorProto { DataType = (int)DataType.Float, Dims = { 2 }, FloatData = { 1f, 2f } }));
        Assert.Equal(new[] { -3, 4 }, OnnxTensor.ToInt32s(new TensorProto { DataType = (int)DataType.Int32, Dims = { 2 }, Int32Data = { -3, 4 } }));
        Assert.Equal(new[] { -3L, 1L << 40 }, OnnxTensor.ToInt64s(new TensorProto { DataType = (int)DataType.Int64, Dims = { 2 }, Int64Data = { -3, 1L << 40 } }));
        Assert.Equal(new[] { true, false }, OnnxTensor.ToBools(new TensorProto { DataType = (int)DataType.Bool, Dims = { 2 }, Int32Data = { 1, 0 } }));
    }

    [Fact]
    public void Float16MatchesSystemHalfForEveryBitPattern()
    {
        var halves = Enumerable.Range(0, 1 << 16).Select(bits => BitConverter.UInt16BitsToHalf((ushort)bits)).ToArray();
        var raw = OnnxTensor.Create("h", halves, halves.Length);
        var typed = new TensorProto { DataType = (int)DataType.Float16, Dims = { halves.Length } };
        typed.Int32Data.Add(halves.Select(h => (int)BitConverter.HalfToUInt16Bits(h)));

        var expectedRaw = halves.SelectMany(h => BitConverter.GetBytes(BitConverter.HalfToUInt16Bits(h))).ToArray();
        Assert.Equal(expectedRaw, raw.RawData.ToByteArray());
        foreach (var tensor in new[] { raw, typed })
        {
            Assert.Equal(halves.Select(BitConverter.HalfToUInt16Bits), OnnxTensor.ToHalfs(tensor).Select(BitConverter.HalfToUInt16Bits));
            Assert.Equal(halves.Select(h => BitConverter.SingleToInt32Bits((float)h)), OnnxTensor.ToFloats(tensor).Select(BitConverter.SingleToInt32Bits));
        }
    }

    [Fact]
    public void Bfloat16WidensToTheFloatWithTheSameUpperBits()
    {
        float[] values = [1f, -2.5f, float.PositiveInfinity, 3.140625f];
        var tensor = new TensorProto { DataType = (int)DataType.Bfloat16, Dims = { values.Length } };
        tensor.Int32Data.Add(values.Select(v => BitConverter.SingleToInt32Bits(v) >>> 16));
        Assert.Equal(values, OnnxTensor.ToFloats(tensor));
    }

    [Fact]
    public void SubByteTypesCountPackedBytes()
    {
        // Five INT4 elements take three bytes.
        var tensor = new TensorProto { DataType = (int)DataType.Int4, Dims = { 5 }, RawData = ByteString.CopyFrom(0x21, 0x43, 0x05) };
        Assert.Equal(new byte[] { 0x21, 0x43, 0x05 }, OnnxTensor.ReadBytes(tensor));
        tensor.RawData = ByteString.CopyFrom(0x21, 0x43);
        Assert.Throws<OnnxFormatException>(() => OnnxTensor.ReadBytes(tensor));
    }

    [Fact]
    public void ElementCountMismatchesAreClearErrors()
    {
        var create = Assert.Throws<ArgumentException>(() => OnnxTensor.Create("w", [1f, 2f, 3f], 2, 2));
        Assert.Contains("holds 4 elements, but 3 values were given", create.Message);

        var raw = new TensorProto { Name = "w", DataType = (int)DataType.Float, Dims = { 2, 2 }, RawData = ByteString.CopyFrom(new byte[12]) };
        Assert.Contains("raw_data has 12 bytes, expected 16", Assert.Throws<OnnxFormatException>(() => OnnxTensor.ToFloats(raw)).Message);

        var typed = new TensorProto { Name = "w", DataType = (int)DataType.Float16, Dims = { 3 }, Int32Data = { 1, 2 } };
        Assert.Contains("int32_data has 2 values, expected 3", Assert.Throws<OnnxFormatException>(() => OnnxTensor.ToHalfs(typed)).Message);

        var negative = new TensorProto { Name = "w", DataType = (int)DataType.Float, Dims = { -1 } };
        Assert.Contains("negative dimension", Assert.Throws<OnnxFormatException>(() => OnnxTensor.ToFloats(negative)).Message);
    }

    [Fact]
    public void ReadingAsTheWrongTypeIsAnArgumentError()
    {
        var error = Assert.Throws<ArgumentException>(() => OnnxTensor.ToInt32s(OnnxTensor.Create("ids", [1L], 1)));
        Assert.Contains("holds Int64 elements", error.Message);
        var strings = new TensorProto { Name = "s", DataType = (int)DataType.String, Dims = { 1 }, StringData = { ByteString.CopyFromUtf8("a") } };
        Assert.Throws<ArgumentException>(() => OnnxTensor.ReadBytes(strings));
    }

    [Fact]
    public void TensorFilesRoundTrip()
    {
        var folder = _folder.Folder("test_data_set_0");
        var path = Path.Combine(folder, "input_0.pb");
        var tensor = OnnxTensor.Create("input_ids", [5L, 6L, 7L], 1, 3);

        OnnxTensor.Save(tensor, path);

        Assert.Equal(tensor, OnnxTensor.Load(path));
        Assert.Equal(["input_0.pb"], Directory.GetFiles(folder).Select(Path.GetFileName));
    }
}
