using Google.Protobuf;
using Onnx;

namespace OrtSparse.Onnx.Tests;

public sealed class LoadErrorTests : IDisposable
{
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void MissingFileNamesThePath()
    {
        var path = _folder.File("absent.onnx");
        var error = Assert.Throws<OnnxFormatException>(() => OnnxModel.Load(path));
        Assert.Equal(path, error.FilePath);
        Assert.Contains("does not exist", error.Message);
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void FolderIsNotAModel()
    {
        var error = Assert.Throws<OnnxFormatException>(() => OnnxModel.Load(_folder.Path));
        Assert.Contains("is a folder", error.Message);
    }

    [Theory]
    [InlineData(new byte[0], "the file is empty")]
    [InlineData(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF }, "not an ONNX model")]
    [InlineData(new byte[] { 0x0A, 0x64, 0x01 }, "not an ONNX model")]
    public void GarbageIsNotAModel(byte[] content, string expected)
    {
        var path = _folder.File("garbage.onnx");
        File.WriteAllBytes(path, content);
        var error = Assert.Throws<OnnxFormatException>(() => OnnxModel.Load(path));
        Assert.StartsWith("not an ONNX model", error.Problem);
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void TextAndTensorFilesAreNotModels()
    {
        var text = _folder.File("readme.onnx");
        File.WriteAllText(text, "hello, this is not a model\n");
        Assert.StartsWith("not an ONNX model", Assert.Throws<OnnxFormatException>(() => OnnxModel.Load(text)).Problem);

        var tensor = _folder.File("input_0.pb");
        OnnxTensor.Save(OnnxTensor.Create("x", [1f, 2f], 2), tensor);
        Assert.StartsWith("not an ONNX model", Assert.Throws<OnnxFormatException>(() => OnnxModel.Load(tensor)).Problem);
    }

    [Fact]
    public void EveryTruncationOfAModelIsRejected()
    {
        var bytes = TestModels.AddWeights(4).ToByteArray();
        var path = _folder.File("cut.onnx");
        for (var length = 0; length < bytes.Length; length++)
        {
            File.WriteAllBytes(path, bytes[..length]);
            var error = Assert.Throws<OnnxFormatException>(() => OnnxModel.Load(path));
            Assert.StartsWith("not an ONNX model", error.Problem);
        }
        File.WriteAllBytes(path, bytes);
        Assert.Equal(TestModels.AddWeights(4), OnnxModel.Load(path).Proto);
    }

    [Fact]
    public void TensorFileErrorsAreClear()
    {
        var missing = _folder.File("input_9.pb");
        Assert.Contains("does not exist", Assert.Throws<OnnxFormatException>(() => OnnxTensor.Load(missing)).Message);

        var garbage = _folder.File("input_0.pb");
        File.WriteAllBytes(garbage, [0xFF, 0xFF, 0xFF]);
        Assert.StartsWith("not a serialized TensorProto", Assert.Throws<OnnxFormatException>(() => OnnxTensor.Load(garbage)).Problem);

        var model = _folder.File("model.onnx");
        File.WriteAllBytes(model, TestModels.AddWeights(2).ToByteArray());
        Assert.StartsWith("not a serialized TensorProto", Assert.Throws<OnnxFormatException>(() => OnnxTensor.Load(model)).Problem);

        var truncated = _folder.File("input_1.pb");
        File.WriteAllBytes(truncated, OnnxTensor.Create("x", [1f, 2f, 3f], 3).ToByteArray()[..^3]);
        Assert.Throws<OnnxFormatException>(() => OnnxTensor.Load(truncated));
    }

    [Fact]
    public void InvalidProtobufKeepsTheParserErrorAsInnerException()
    {
        var path = _folder.File("bad.onnx");
        File.WriteAllBytes(path, [0x3A, 0x20, 0x01]);
        var error = Assert.Throws<OnnxFormatException>(() => OnnxModel.Load(path));
        Assert.IsType<InvalidProtocolBufferException>(error.InnerException);
    }
}
