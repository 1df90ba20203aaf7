using Onnx;
using DataLocation = Onnx.TensorProto.Types.DataLocation;

namespace OrtSparse.Onnx.Tests;

public sealed class ExternalDataTests : IDisposable
{
    private const int Large = 3000;   // 12,000 bytes of float data
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    private OnnxModel SaveExternal(string folder, string name = "model.onnx")
    {
        var path = Path.Combine(folder, name);
        new OnnxModel(TestModels.AddWeights(Large)).Save(path, new SaveOptions { ExternalDataThreshold = 1024 });
        return OnnxModel.Load(path);
    }

    private static Dictionary<string, string> Entries(TensorProto tensor) => tensor.ExternalData.ToDictionary(e => e.Key, e => e.Value);

    [Fact]
    public void LargeTensorsGoToAnAlignedDataFileAndReadBack()
    {
        var model = SaveExternal(_folder.Path);

        var weight = TestModels.Initializer(model.Proto, "weight");
        var bias = TestModels.ConstantValue(model.Proto);
        Assert.Equal(DataLocation.External, weight.DataLocation);
        Assert.Equal(DataLocation.External, bias.DataLocation);
        Assert.True(weight.RawData.IsEmpty);
        Assert.Equal(new Dictionary<string, string> { ["location"] = "model.onnx.data", ["offset"] = "0", ["length"] = "12000" }, Entries(weight));
        Assert.Equal("12288", Entries(bias)["offset"]);
        Assert.True(new FileInfo(_folder.File("model.onnx")).Length < 1024);
        Assert.Equal(12288 + 12000, new FileInfo(_folder.File("model.onnx.data")).Length);

        Assert.Equal(TestModels.Sequence(Large), OnnxTensor.ToFloats(weight, model.BaseDirectory));
        Assert.Equal(TestModels.Sequence(Large, start: 1000), OnnxTensor.ToFloats(bias, model.BaseDirectory));
    }

    [Fact]
    public void SmallTensorsStayInline()
    {
        var path = _folder.File("small.onnx");
        new OnnxModel(TestModels.AddWeights(10)).Save(path, new SaveOptions { ExternalDataThreshold = 1024 });

        var model = OnnxModel.Load(path);
        Assert.False(File.Exists(_folder.File("small.onnx.data")));
        Assert.Equal(TestModels.AddWeights(10), model.Proto);
    }

    [Fact]
    public void SavingToAnotherFolderCopiesTheData()
    {
        var source = SaveExternal(_folder.Folder("a"));
        var target = Path.Combine(_folder.Folder("b"), "copy.onnx");

        source.Save(target);
        Directory.Delete(_folder.File("a"), recursive: true);

        var copy = OnnxModel.Load(target);
        var weight = TestModels.Initializer(copy.Proto, "weight");
        Assert.Equal("copy.onnx.data", Entries(weight)["location"]);
        Assert.Equal(TestModels.Sequence(Large), OnnxTensor.ToFloats(weight, copy.BaseDirectory));
        Assert.Equal(TestModels.Sequence(Large, start: 1000), OnnxTensor.ToFloats(TestModels.ConstantValue(copy.Proto), copy.BaseDirectory));
    }

    [Fact]
    public void ACustomLocationInASubfolderWorks()
    {
        var source = SaveExternal(_folder.Path);
        var target = _folder.File("renamed.onnx");

        source.Save(target, new SaveOptions { ExternalDataLocation = "weights/all.bin" });

        var copy = OnnxModel.Load(target);
        Assert.True(File.Exists(_folder.File("weights/all.bin")));
        Assert.Equal(TestModels.Sequence(Large), OnnxTensor.ToFloats(TestModels.Initializer(copy.Proto, "weight"), copy.BaseDirectory));
    }

    [Fact]
    public void AHighThresholdBringsDataBackInline()
    {
        var source = SaveExternal(_folder.Path);
        var target = _folder.File("inline.onnx");

        source.Save(target, new SaveOptions { ExternalDataThreshold = long.MaxValue });

        File.Delete(_folder.File("model.onnx.data"));
        var inline = OnnxModel.Load(target);
        Assert.False(File.Exists(_folder.File("inline.onnx.data")));
        var weight = TestModels.Initializer(inline.Proto, "weight");
        Assert.False(weight.HasDataLocation);
        Assert.Empty(weight.ExternalData);
        Assert.Equal(TestModels.Sequence(Large), OnnxTensor.ToFloats(weight));
    }

    [Fact]
    public void TypedFieldTensorsAreWrittenAsRawBytes()
    {
        var model = TestModels.AddWeights(4);
        var weight = TestModels.Initializer(model, "weight");
        weight.RawData = Google.Protobuf.ByteString.Empty;
        weight.FloatData.Add(new[] { 9f, 8f, 7f, 6f });
        var path = _folder.File("typed.onnx");

        new OnnxModel(model).Save(path, new SaveOptions { ExternalDataThreshold = 0 });

        var loaded = OnnxModel.Load(path);
        var saved = TestModels.Initializer(loaded.Proto, "weight");
        Assert.Empty(saved.FloatData);
        Assert.Equal(new[] { 9f, 8f, 7f, 6f }, OnnxTensor.ToFloats(saved, loaded.BaseDirectory));
        Assert.Equal(new[] { 9f, 8f, 7f, 6f }, TestModels.Initializer(model, "weight").FloatData);
    }

    [Fact]
    public void MissingDataFileFailsTheLoad()
    {
        SaveExternal(_folder.Path);
        File.Delete(_folder.File("model.onnx.data"));

        var error = Assert.Throws<OnnxFormatException>(() => OnnxModel.Load(_folder.File("model.onnx")));
        Assert.Equal(_folder.File("model.onnx.data"), error.FilePath);
        Assert.Contains("does not exist", error.Message);
    }

    [Fact]
    public void TruncatedDataFileOrBadOffsetFailsTheLoad()
    {
        SaveExternal(_folder.Path);
        using (var data = File.OpenWrite(_folder.File("model.onnx.data")))
        {
            data.SetLength(20000);
        }
        var error = Assert.Throws<OnnxFormatException>(() => OnnxModel.Load(_folder.File("model.onnx")));
        Assert.Contains("runs past the end of the file (20000 bytes)", error.Message);

        var model = SaveExternal(_folder.Path);
        TestModels.Initializer(model.Proto, "weight").ExternalData.Single(e => e.Key == "offset").Value = "-5";
        Assert.Contains("offset '-5' is not a byte count", Assert.Throws<OnnxFormatException>(() => model.Save(_folder.File("other.onnx"))).Message);
    }

    [Fact]
    public void StatedLengthMustMatchTheShape()
    {
        var model = SaveExternal(_folder.Path);
        var weight = TestModels.Initializer(model.Proto, "weight");
        weight.ExternalData.Single(e => e.Key == "length").Value = "11996";

        var error = Assert.Throws<OnnxFormatException>(() => OnnxTensor.ToFloats(weight, model.BaseDirectory));
        Assert.Contains("length 11996 does not match the 12000 bytes", error.Message);
    }

    [Fact]
    public void LocationsOutsideTheModelFolderAreRejected()
    {
        var model = SaveExternal(_folder.Folder("inner"));
        var weight = TestModels.Initializer(model.Proto, "weight");
        foreach (var location in new[] { "../model.onnx.data", "/etc/passwd" })
        {
            weight.ExternalData.Single(e => e.Key == "location").Value = location;
            var error = Assert.Throws<OnnxFormatException>(() => OnnxTensor.ReadBytes(weight, model.BaseDirectory));
            Assert.Contains("must be a relative path inside the model's folder", error.Message);
        }
        Assert.Throws<ArgumentException>(() => model.Save(_folder.File("x.onnx"), new SaveOptions { ExternalDataLocation = "../x.data" }));
    }

    [Fact]
    public void ExternalDataNeedsAFolder()
    {
        var model = SaveExternal(_folder.Path);
        var error = Assert.Throws<OnnxFormatException>(() => OnnxTensor.ToFloats(TestModels.Initializer(model.Proto, "weight")));
        Assert.Contains("not loaded from a file", error.Message);
    }
}
