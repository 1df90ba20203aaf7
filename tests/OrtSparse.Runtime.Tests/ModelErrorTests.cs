using Google.Protobuf;
using OrtSparse.GraphRewriter;
using OrtSparse.Onnx;
using OrtSparse.Runtime.Generation;

namespace OrtSparse.Runtime.Tests;

/// <summary>Bad inputs get errors that say what is wrong.</summary>
public class ModelErrorTests
{
    private static Model Load() => Model.Load(PatchedModels.TinyLlama(), TestDevice.Options);

    [Fact]
    public void AMissingFolderIsNamed()
    {
        var error = Assert.Throws<FileNotFoundException>(() => Model.Load("/no/such/model-folder"));
        Assert.Contains("/no/such/model-folder", error.Message);
    }

    [Fact]
    public void AFolderWithoutARuntimeConfigSaysToPatch()
    {
        var error = Assert.Throws<FileNotFoundException>(() => Model.Load(PatchedModels.TinyLlamaFolder));
        Assert.Contains("ortsparse patch", error.Message);
    }

    [Fact]
    public void AConfigNamingAMissingModelIsNamed()
    {
        var folder = Directory.CreateTempSubdirectory("ortsparse-missing-").FullName;
        File.Copy(Path.Combine(PatchedModels.TinyLlama(), "model.ortsparse.json"), Path.Combine(folder, "model.ortsparse.json"));
        var error = Assert.Throws<FileNotFoundException>(() => Model.Load(folder));
        Assert.Contains("model.onnx", error.Message);
    }

    [Fact]
    public void AModelWithoutACacheSaysToAddOne()
    {
        var result = ModelPatcher.Patch(OnnxModel.Load(Path.Combine(PatchedModels.TinyLlamaFolder, "model.onnx")).Proto, new PatchOptions());
        var folder = Directory.CreateTempSubdirectory("ortsparse-nocache-").FullName;
        File.WriteAllBytes(Path.Combine(folder, "model.onnx"), result.Model.ToByteArray());
        File.WriteAllText(Path.Combine(folder, "model.ortsparse.json"), RuntimeConfig.ToJson(result, "model.onnx"));
        var error = Assert.Throws<InvalidDataException>(() => Model.Load(folder));
        Assert.Contains("--add-cache", error.Message);
    }

    [Fact]
    public void AMaximumLengthOverTheModelsIsRefused()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => Model.Load(PatchedModels.TinyLlama(), new ModelOptions { MaxLength = 100_000 }));
        Assert.Contains("100000", error.Message);
        Assert.Contains("4096", error.Message);
    }

    [Fact]
    public void EmptyPromptsAndPromptsOverTheMaximumAreRefused()
    {
        using var model = Model.Load(PatchedModels.TinyLlama(), TestDevice.Options with { MaxLength = 8 });
        using var generator = model.CreateGenerator();
        Assert.Contains("Prompt 0 is empty", Assert.Throws<ArgumentException>(() => generator.AppendTokens([])).Message);
        var tooLong = Assert.Throws<ArgumentOutOfRangeException>(() => generator.AppendTokens([1, 2, 3, 4, 5, 6, 7, 8]));
        Assert.Contains("maximum length (8)", tooLong.Message);
        var outside = Assert.Throws<ArgumentOutOfRangeException>(() => generator.AppendTokens([1, 5000]));
        Assert.Contains("5000", outside.Message);
        Assert.Throws<InvalidOperationException>(generator.GenerateNextToken);
    }

    [Fact]
    public void BadSettingsAreRefused()
    {
        using var model = Load();
        Assert.Contains("MaxNewTokens (0)", Assert.Throws<ArgumentOutOfRangeException>(() => model.CreateGenerator(new GeneratorSettings { MaxNewTokens = 0 })).Message);
        Assert.Throws<ArgumentException>(() => model.CreateGenerator(new GeneratorSettings { StopStrings = [""] }));
        Assert.Contains("CacheGrowthTokens (0)",
            Assert.Throws<ArgumentOutOfRangeException>(() => Model.Load(PatchedModels.TinyLlama(), new ModelOptions { CacheGrowthTokens = 0 })).Message);
    }

    [Fact]
    public void ADoneGeneratorRefusesToGenerate()
    {
        using var model = Load();
        using var generator = model.CreateGenerator(new GeneratorSettings { MaxNewTokens = 1, StopTokenIds = [] });
        generator.AppendTokens([1, 2, 3]);
        generator.GenerateNextToken();
        Assert.True(generator.IsDone);
        Assert.Contains("stopped", Assert.Throws<InvalidOperationException>(generator.GenerateNextToken).Message);
    }
}
