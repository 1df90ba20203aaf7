using System.Text.RegularExpressions;
using OrtSparse.Cli;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>`ortsparse demo` on the shipped code model: dense and a sparse method side by side.</summary>
public sealed class DemoCommandTests : IDisposable
{
    private readonly string _work = Directory.CreateTempSubdirectory("ortsparse-demo-").FullName;

    public void Dispose() => Directory.Delete(_work, recursive: true);

    /// <summary>The demo on the shipped model, named by its path: a published test run's folder is not under the repository.</summary>
    private (int Code, string Out, string Err) Demo(params string[] args) =>
        CliTests.Cli(["demo", CodeModel.PathOf(CodeModel.ModelFile), "--work", _work, "--threads", "1", "--max-new", "16",
            "--device", TestDevice.IsCuda ? "cuda" : "cpu", .. args]);

    /// <summary>
    /// With no method or prompt: loki (with the calibration beside the model) on the training script up to its main function (thousands of tokens), so a decode
    /// step reads a fraction of the cache.
    /// </summary>
    [Fact]
    public void TheDefaultIsLokiOnALongPrompt()
    {
        var (code, output, error) = Demo();
        Assert.True(code == CliApp.Ok, error);
        Assert.Contains("== loki", output);
        var prompt = Regex.Match(output, @"prompt (\d+) tokens");
        Assert.True(prompt.Success && int.Parse(prompt.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) > 4000, output);
        var read = Regex.Match(output, @"KV cache read per step\s+100\.0%\s+([\d.]+)%");
        Assert.True(read.Success, output);
        Assert.InRange(double.Parse(read.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), 5, 25);
    }

    /// <summary>topk with the whole cache in its budget selects every key: the two runs agree on every token.</summary>
    [Fact]
    public void AMethodThatKeepsEveryKeyAgreesWithDense()
    {
        var (code, output, error) = Demo("--method", "topk", "--budget", "1", "--dense-below", "0");
        Assert.True(code == CliApp.Ok, error);
        Assert.Contains("== dense", output);
        Assert.Contains("== topk-budget1-dense_below0", output);
        Assert.Contains("agreement: 16 of 16 tokens equal dense's (identical)", output);
    }

    /// <summary>quest with a budget of a few keys reads part of the cache, and the demo says how much and where the texts part.</summary>
    [Fact]
    public void ASmallBudgetReadsPartOfTheCacheAndSaysWhereTheTextsPart()
    {
        var (code, output, error) = Demo("--prompt", "import os\nimport sys\n\nclass Config:\n    def __init__(self", "--dense-below", "0", "--sink", "1", "--window", "2", "--budget", "4");
        Assert.True(code == CliApp.Ok, error);
        var read = Regex.Match(output, @"KV cache read per step\s+100\.0%\s+([\d.]+)%");
        Assert.True(read.Success, output);
        Assert.InRange(double.Parse(read.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), 1, 99);
        Assert.Matches(new Regex(@"agreement: \d+ of 16 tokens equal dense's"), output);
    }

    [Fact]
    public void DenseAgainstDenseIsRefused()
    {
        var (code, _, error) = Demo("--method", "dense");
        Assert.Equal(CliApp.Usage, code);
        Assert.Contains("compared with itself", error);
    }
}
