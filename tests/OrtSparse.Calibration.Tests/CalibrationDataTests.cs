using OrtSparse.Onnx;

namespace OrtSparse.Calibration.Tests;

public sealed class CalibrationDataTests : IDisposable
{
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    private static CalibrationData Sample()
    {
        var data = new CalibrationData();
        data.SetTensor(CalibrationNames.HashProjections(3), HashProjections.Create(2, 2, 4, 4, seed: 9));
        data.SetTensor(CalibrationNames.LokiBasis(0), new CalibrationTensor([1, 0, 0, 1, 0, 1, 1, 0], 2, 2, 2));
        data.SetTensor(CalibrationNames.SaapB1(1), new CalibrationTensor([0.5f, -1.25f, float.Epsilon], 1, 3));
        data.SetMetadata("seed", "1234");
        data.SetMetadata("source_model", "models/tiny/model.onnx");
        return data;
    }

    [Fact]
    public void SaveAndLoadRoundTripTensorsAndMetadata()
    {
        var path = _folder.File("calibration.onnx");
        var saved = Sample();
        saved.Save(path);

        var loaded = CalibrationData.Load(path);

        Assert.Equal(Path.GetFullPath(path), loaded.SourcePath);
        Assert.Equal(["layers.0.loki.basis", "layers.1.saap.b1", "layers.3.hash.projections"], loaded.TensorNames);
        foreach (var name in saved.TensorNames)
        {
            Assert.Equal(saved.GetTensor(name).Shape, loaded.GetTensor(name).Shape);
            Assert.Equal(saved.GetTensor(name).Values.ToArray(), loaded.GetTensor(name).Values.ToArray());
        }
        Assert.Equal(saved.Metadata, loaded.Metadata);
        Assert.Equal("1234", loaded.GetMetadata("seed"));
        Assert.Null(loaded.GetMetadata("absent"));
        Assert.Equal([2, 2, 4, 2], loaded.GetTensor(CalibrationNames.HashProjections(3), 2, 2, 4, 2).Shape);
        Assert.Equal([1, 3], loaded.GetTensor(CalibrationNames.SaapB1(1), -1, 3).Shape);
        // The file is an ordinary ONNX model: a graph without nodes, initializers and marked metadata.
        var model = OnnxModel.Load(path).Proto;
        Assert.Empty(model.Graph.Node);
        Assert.Contains(model.MetadataProps, e => e.Key == CalibrationData.FormatKey && e.Value == CalibrationData.FormatVersion);
    }

    [Fact]
    public void EqualDataGivesIdenticalFilesAndALoadedFileCanBeOverwritten()
    {
        var first = _folder.File("a.onnx");
        var second = _folder.File("b.onnx");
        Sample().Save(first);
        var reordered = new CalibrationData();
        var sample = Sample();
        foreach (var name in sample.TensorNames.Reverse())
        {
            reordered.SetTensor(name, sample.GetTensor(name));
        }
        reordered.SetMetadata("source_model", "models/tiny/model.onnx");
        reordered.SetMetadata("seed", "1234");
        reordered.Save(second);
        Assert.Equal(File.ReadAllBytes(first), File.ReadAllBytes(second));

        var loaded = CalibrationData.Load(first);
        loaded.SetMetadata("seed", "99");
        loaded.Save(first);
        Assert.Equal("99", CalibrationData.Load(first).GetMetadata("seed"));
        Assert.Empty(Directory.GetFiles(_folder.Path, "*.tmp"));
    }

    [Fact]
    public void MissingTensorNamesTheFileAndTheTensor()
    {
        var path = _folder.File("calibration.onnx");
        Sample().Save(path);
        var loaded = CalibrationData.Load(path);

        var error = Assert.Throws<OnnxFormatException>(() => loaded.GetTensor(CalibrationNames.SaapCentroids(1), 2, 8, 4));

        Assert.Equal(Path.GetFullPath(path), error.FilePath);
        Assert.Contains(Path.GetFullPath(path), error.Message);
        Assert.Contains("'layers.1.saap.centroids' is missing", error.Message);
        Assert.Contains("layers.0.loki.basis", error.Message);
        Assert.Contains("no tensors", Assert.Throws<OnnxFormatException>(() => new CalibrationData().GetTensor("x")).Message);
    }

    [Fact]
    public void WrongShapeNamesTheFileTheTensorAndBothShapes()
    {
        var path = _folder.File("calibration.onnx");
        Sample().Save(path);
        var loaded = CalibrationData.Load(path);

        var error = Assert.Throws<OnnxFormatException>(() => loaded.GetTensor(CalibrationNames.LokiBasis(0), 2, 2, 3));
        var rank = Assert.Throws<OnnxFormatException>(() => loaded.GetTensor(CalibrationNames.LokiBasis(0), 2, -1));

        Assert.Equal(Path.GetFullPath(path), error.FilePath);
        Assert.Contains("'layers.0.loki.basis' has shape [2,2,2], expected [2,2,3]", error.Message);
        Assert.Contains("expected [2,?]", rank.Message);
    }

    [Fact]
    public void OtherFilesAreRejectedWithTheReason()
    {
        var missing = _folder.File("absent.onnx");
        Assert.Contains("does not exist", Assert.Throws<OnnxFormatException>(() => CalibrationData.Load(missing)).Message);

        var plainModel = _folder.File("model.onnx");
        new OnnxModel(OnnxBuilder.Model(OnnxBuilder.Graph("g", [], [], []), [OnnxBuilder.Opset("", 21)])).Save(plainModel);
        Assert.Contains("not OrtSparse calibration data", Assert.Throws<OnnxFormatException>(() => CalibrationData.Load(plainModel)).Message);

        var future = OnnxBuilder.Model(OnnxBuilder.Graph("g", [], [], []), [OnnxBuilder.Opset("", 21)]);
        future.MetadataProps.Add(new global::Onnx.StringStringEntryProto { Key = CalibrationData.FormatKey, Value = "2" });
        var futurePath = _folder.File("future.onnx");
        new OnnxModel(future).Save(futurePath);
        Assert.Contains("version '2' is not supported", Assert.Throws<OnnxFormatException>(() => CalibrationData.Load(futurePath)).Message);

        var integers = OnnxBuilder.Model(OnnxBuilder.Graph("g", [], [], [], [OnnxTensor.Create("layers.0.saap.w1", [1, 2], 2)]), [OnnxBuilder.Opset("", 21)]);
        integers.MetadataProps.Add(new global::Onnx.StringStringEntryProto { Key = CalibrationData.FormatKey, Value = CalibrationData.FormatVersion });
        var integersPath = _folder.File("integers.onnx");
        new OnnxModel(integers).Save(integersPath);
        var wrongType = Assert.Throws<OnnxFormatException>(() => CalibrationData.Load(integersPath));
        Assert.Contains("'layers.0.saap.w1' holds Int32 elements", wrongType.Message);
        Assert.Contains(integersPath, wrongType.Message);
    }

    [Fact]
    public void ReservedAndEmptyNamesAreRefused()
    {
        var data = new CalibrationData();
        Assert.Throws<ArgumentException>(() => data.SetMetadata(CalibrationData.FormatKey, "1"));
        Assert.Throws<ArgumentException>(() => data.SetMetadata("", "1"));
        Assert.Throws<ArgumentException>(() => data.SetTensor("", new CalibrationTensor([1], 1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => CalibrationNames.LokiBasis(-1));
    }

    [Fact]
    public void TensorsCheckTheirShapeAndStackAlongANewAxis()
    {
        var stacked = CalibrationTensor.Stack([new CalibrationTensor([1, 2, 3, 4], 2, 2), new CalibrationTensor([5, 6, 7, 8], 2, 2)]);

        Assert.Equal([2, 2, 2], stacked.Shape);
        Assert.Equal([1f, 2, 3, 4, 5, 6, 7, 8], stacked.Values.ToArray());
        Assert.Equal("[2,2,2]", stacked.ToString());
        Assert.Contains("holds 6 elements, but 4 values", Assert.Throws<ArgumentException>(() => new CalibrationTensor([1, 2, 3, 4], 2, 3)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new CalibrationTensor([], -1, 0));
        var mismatch = Assert.Throws<ArgumentException>(() => CalibrationTensor.Stack([new CalibrationTensor([1, 2], 2), new CalibrationTensor([1, 2], 1, 2)]));
        Assert.Contains("parts[1] has shape [1,2], parts[0] has [2]", mismatch.Message);
        Assert.Throws<ArgumentException>(() => CalibrationTensor.Stack([]));
    }
}
