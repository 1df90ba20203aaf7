using OrtSparse.Cli;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>
/// Every method patched into the sample model and run inside ONNX Runtime on its golden data sets
/// (chunked prefill after a cache, and a decode step), with the state inputs left to their empty
/// defaults so the op rebuilds the state from the cache. With sparsity forced on (dense_below 0)
/// and a budget covering the whole cache, a method must reproduce ONNX Runtime's dense outputs;
/// hash, whose candidates are bucket matches whatever the budget, must not. With
/// ORTSPARSE_TEST_DEVICE=cuda the op runs on the CUDA provider on the decode data set only: the
/// sample model is fp32, and the CUDA op prefills in fp16 and bf16 only.
/// </summary>
public sealed class MethodEndToEndTests : IClassFixture<MethodEndToEndTests.Calibrated>
{
    /// <summary>One calibration of the sample model shared by the tests.</summary>
    public sealed class Calibrated : IDisposable
    {
        public string Folder { get; } = Directory.CreateTempSubdirectory("ortsparse-e2e-").FullName;

        public string File => Path.Combine(Folder, "sample.calib");

        public Calibrated()
        {
            var tokens = Path.Combine(Folder, "tokens.txt");
            System.IO.File.WriteAllText(tokens, string.Join(" ", Enumerable.Range(0, 400).Select(i => (i * 53 + 7) % 256)));
            var stderr = new StringWriter();
            var code = CliApp.Run(["calibrate", Sample, "--tokens", tokens, "-o", File, "--clusters", "16", "--epochs", "2"], new StringWriter(), stderr);
            Assert.True(code == 0, stderr.ToString());
        }

        public void Dispose() => Directory.Delete(Folder, recursive: true);
    }

    private readonly Calibrated _calibrated;

    public MethodEndToEndTests(Calibrated calibrated) => _calibrated = calibrated;

    private static string Sample => Path.Combine(CliTests.RepositoryRoot(), "models", "sample", "model.onnx");

    // The sample's data sets: 0 a chunked prefill, 1 a decode step; five outputs each.
    private static string DataSets => Path.Combine(CliTests.RepositoryRoot(), "models", "sample", TestDevice.IsCuda ? "test_data_set_1" : "");

    private static string AllMatch => $"all {(TestDevice.IsCuda ? 5 : 10)} outputs match";

    // The golden outputs come from ONNX Runtime's CPU kernels. On CUDA the model's fp32 MatMuls run
    // in TF32 (10-bit mantissa, ONNX Runtime's default there), which moves outputs by up to ~1e-3
    // relative; a wrong selection moves them by more than 0.1.
    private static string[] Tolerances => TestDevice.IsCuda ? ["--atol", "1e-3", "--rtol", "1e-2"] : ["--atol", "2e-5", "--rtol", "1e-3"];

    private (int Code, string Out) PatchAndCheck(string method, params string[] parameters)
    {
        TestDevice.EnsureOpRunsThere();
        var output = Path.Combine(_calibrated.Folder, $"{method}-{string.Join("_", parameters).Replace("-", "")}.onnx");
        var stderr = new StringWriter();
        var patch = CliApp.Run(["patch", Sample, "-o", output, "--method", method, "--calibration", _calibrated.File, .. parameters], new StringWriter(), stderr);
        Assert.True(patch == 0, stderr.ToString());
        var stdout = new StringWriter();
        stderr = new StringWriter();
        var code = CliApp.Run(["check", output, DataSets, .. Tolerances, .. TestDevice.CliArgs], stdout, stderr);
        return (code, stdout + stderr.ToString());
    }

    [Theory]
    [InlineData("topk")]
    [InlineData("loki")]
    [InlineData("quest")]
    [InlineData("saap")]
    public void FullBudgetEqualsDense(string method)
    {
        var (code, output) = PatchAndCheck(method, "--dense_below", "0", "--budget", "1", "--sink", "1", "--window", "1");
        Assert.True(code == 0, output);
        Assert.Contains(AllMatch, output);
    }

    /// <summary>Each layer its own method, calibration tensors of its layer and shared parameters.</summary>
    [Fact]
    public void PerLayerMethodsWithTheWholeCacheInBudgetEqualDense()
    {
        var (code, output) = PatchAndCheck("dense", "--layer-method", "0=loki:rank=16,1=saap", "--dense_below", "0", "--budget", "1", "--sink", "1", "--window", "1");
        Assert.True(code == 0, output);
        Assert.Contains(AllMatch, output);
    }

    [Fact]
    public void StreamingWithAWindowOverTheCacheEqualsDense()
    {
        var (code, output) = PatchAndCheck("streaming", "--dense_below", "0", "--window", "100");
        Assert.True(code == 0, output);
    }

    [Fact]
    public void SparseSelectionChangesTheOutput()
    {
        // Two keys of a dozen: the attention output must move away from dense, the caches must not.
        var (code, output) = PatchAndCheck("streaming", "--dense_below", "0", "--sink", "1", "--window", "1");
        Assert.Equal(CliApp.Failed, code);
        Assert.Contains("last_hidden_state", output);
        Assert.DoesNotContain("present.0.key      MISMATCH", output);
    }

    [Fact]
    public void HyperPrefillOfShortRowsIsDense()
    {
        // Rows shorter than dense_below (the default 1024) are attended densely; decode steps always are.
        var (code, output) = PatchAndCheck("hyper");
        Assert.True(code == 0, output);
        Assert.Contains(AllMatch, output);
    }

    [Fact]
    public void HyperRunsAndIsSparse()
    {
        var (code, output) = PatchAndCheck("hyper", "--dense_below", "0", "--sink", "1", "--window", "1", "--bits", "4");
        Assert.Equal(CliApp.Failed, code);
        Assert.Contains("outputs mismatch", output);
        Assert.DoesNotContain("present.0.key      MISMATCH", output);
    }

    [Fact]
    public void HashRunsAndIsSparse()
    {
        var (code, output) = PatchAndCheck("hash", "--dense_below", "0", "--budget", "1", "--sink", "1", "--window", "1");
        Assert.Equal(CliApp.Failed, code);
        Assert.Contains("outputs mismatch", output);
    }
}
