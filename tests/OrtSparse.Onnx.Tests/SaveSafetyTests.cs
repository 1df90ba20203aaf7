namespace OrtSparse.Onnx.Tests;

public sealed class SaveSafetyTests : IDisposable
{
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    private string[] FolderContent() => Directory.GetFiles(_folder.Path, "*", SearchOption.AllDirectories).Select(Path.GetFileName).Order().ToArray()!;

    [Fact]
    public void SavingOverTheInputIsRefusedByDefault()
    {
        var path = _folder.File("model.onnx");
        new OnnxModel(TestModels.AddWeights(4)).Save(path);
        var before = File.ReadAllBytes(path);
        var model = OnnxModel.Load(path);
        model.Proto.ProducerName = "changed";

        var error = Assert.Throws<IOException>(() => model.Save(path));

        Assert.Contains("refusing to overwrite", error.Message);
        Assert.Equal(before, File.ReadAllBytes(path));
        model.Save(path, new SaveOptions { AllowOverwriteSource = true });
        Assert.Equal("changed", OnnxModel.Load(path).Proto.ProducerName);
        Assert.Equal(["model.onnx"], FolderContent());
    }

    [Fact]
    public void SavingOverTheInputsDataFileIsRefusedByDefault()
    {
        var path = _folder.File("model.onnx");
        new OnnxModel(TestModels.AddWeights(3000)).Save(path, new SaveOptions { ExternalDataThreshold = 1024 });
        var model = OnnxModel.Load(path);

        var error = Assert.Throws<IOException>(() => model.Save(_folder.File("other.onnx"), new SaveOptions { ExternalDataLocation = "model.onnx.data" }));
        Assert.Contains("model.onnx.data", error.Message);
        Assert.Equal(["model.onnx", "model.onnx.data"], FolderContent());
    }

    [Fact]
    public void OverwritingInPlacePointsTheModelAtTheNewFiles()
    {
        var path = _folder.File("model.onnx");
        new OnnxModel(TestModels.AddWeights(3000)).Save(path, new SaveOptions { ExternalDataThreshold = 1024 });
        var model = OnnxModel.Load(path);
        model.Proto.Graph.Initializer.Insert(0, OnnxTensor.Create("extra", TestModels.Sequence(2000, start: 7), 2000));

        model.Save(path, new SaveOptions { ExternalDataThreshold = 1024, AllowOverwriteSource = true });

        // The extra tensor now sits first in the data file, moving the others: the model must follow.
        var extra = TestModels.Initializer(model.Proto, "extra");
        Assert.Equal(TestModels.Sequence(2000, start: 7), OnnxTensor.ToFloats(extra, model.BaseDirectory));
        Assert.Equal(TestModels.Sequence(3000), OnnxTensor.ToFloats(TestModels.Initializer(model.Proto, "weight"), model.BaseDirectory));
        Assert.Equal(TestModels.Sequence(3000, start: 1000), OnnxTensor.ToFloats(TestModels.ConstantValue(model.Proto), model.BaseDirectory));
        Assert.Equal(model.Proto, OnnxModel.Load(path).Proto);
        Assert.Equal(["model.onnx", "model.onnx.data"], FolderContent());
    }

    [Fact]
    public void AFailedSaveLeavesTheOldFilesAndNoTempFiles()
    {
        var source = _folder.File("source.onnx");
        new OnnxModel(TestModels.AddWeights(3000)).Save(source, new SaveOptions { ExternalDataThreshold = 1024 });
        var model = OnnxModel.Load(source);
        var target = _folder.File("target.onnx");
        File.WriteAllText(target, "old model");
        File.WriteAllText(target + ".data", "old data");
        // The data vanishes after loading, so the save fails halfway through copying it.
        File.Delete(source + ".data");

        Assert.Throws<OnnxFormatException>(() => model.Save(target));

        Assert.Equal("old model", File.ReadAllText(target));
        Assert.Equal("old data", File.ReadAllText(target + ".data"));
        Assert.Equal(["source.onnx", "target.onnx", "target.onnx.data"], FolderContent());
    }

    [Fact]
    public void ASuccessfulSaveReplacesTheOldFileAndLeavesNoTempFiles()
    {
        var target = _folder.File("target.onnx");
        File.WriteAllText(target, "old model");

        new OnnxModel(TestModels.AddWeights(4)).Save(target);

        Assert.Equal(TestModels.AddWeights(4), OnnxModel.Load(target).Proto);
        Assert.Equal(["target.onnx"], FolderContent());
    }

    [Fact]
    public void TheSavedModelIsNotChanged()
    {
        var model = new OnnxModel(TestModels.AddWeights(3000));
        model.Save(_folder.File("model.onnx"), new SaveOptions { ExternalDataThreshold = 1024 });

        Assert.Equal(TestModels.AddWeights(3000), model.Proto);
        Assert.Null(model.SourcePath);
    }
}
