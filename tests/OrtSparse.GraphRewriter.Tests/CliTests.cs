using Google.Protobuf;
using Onnx;
using OrtSparse.Cli;
using OrtSparse.Onnx;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>The ortsparse commands end to end, on the committed sample model and on broken inputs.</summary>
public sealed class CliTests : IDisposable
{
    private readonly string _scratch = Directory.CreateTempSubdirectory("ortsparse-cli-").FullName;

    public void Dispose() => Directory.Delete(_scratch, recursive: true);

    private static string SampleDir => Path.Combine(RepositoryRoot(), "models", "sample");

    /// <summary>Runs the ortsparse command line in this process.</summary>
    internal static (int Code, string Out, string Err) Cli(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = CliApp.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public void PatchThenCheckTheSampleModel()
    {
        var output = Path.Combine(_scratch, "sample-dense.onnx");
        var before = File.ReadAllBytes(Path.Combine(SampleDir, "model.onnx"));

        var patch = Cli("patch", Path.Combine(SampleDir, "model.onnx"), "-o", output, "--method", "dense");
        Assert.True(patch.Code == 0, patch.Err);
        Assert.Contains("patched 2 attention site(s) with method 'dense'", patch.Out);
        Assert.Equal(before, File.ReadAllBytes(Path.Combine(SampleDir, "model.onnx")));

        var check = Cli("check", output, SampleDir);
        Assert.True(check.Code == 0, check.Out + check.Err);
        Assert.Contains("all 10 outputs match", check.Out);

        var inspect = Cli("inspect", output);
        Assert.Contains("already patched: 2 com.ortsparse.SparseAttention node(s)", inspect.Out);
        Assert.Contains("/layers.1/attn/Attention: method dense", inspect.Out);
    }

    [Fact]
    public void CheckFailsWhenAnExpectedOutputIsWrong()
    {
        var dataSet = Path.Combine(_scratch, "test_data_set_0");
        Directory.CreateDirectory(dataSet);
        foreach (var file in Directory.GetFiles(Path.Combine(SampleDir, "test_data_set_1")))
        {
            File.Copy(file, Path.Combine(dataSet, Path.GetFileName(file)));
        }
        var expectedPath = Path.Combine(dataSet, "output_0.pb");
        var expected = TensorProto.Parser.ParseFrom(File.ReadAllBytes(expectedPath));
        var values = OnnxTensor.ReadBytes(expected);
        BitConverter.GetBytes(BitConverter.ToSingle(values, 0) + 0.01f).CopyTo(values, 0);
        expected.RawData = ByteString.CopyFrom(values);
        expected.FloatData.Clear();
        File.WriteAllBytes(expectedPath, expected.ToByteArray());

        var check = Cli("check", Path.Combine(SampleDir, "model.onnx"), dataSet);

        Assert.Equal(1, check.Code);
        Assert.Contains("MISMATCH", check.Out);
        Assert.Contains("1 of 5 outputs mismatch", check.Out);
    }

    [Fact]
    public void PatchNeverOverwritesItsInput()
    {
        var input = Path.Combine(_scratch, "model.onnx");
        File.Copy(Path.Combine(SampleDir, "model.onnx"), input);
        var before = File.ReadAllBytes(input);

        var result = Cli("patch", input, "-o", Path.Combine(_scratch, ".", "model.onnx"));

        Assert.Equal(CliApp.Usage, result.Code);
        Assert.Contains("would overwrite the input", result.Err);
        Assert.Equal(before, File.ReadAllBytes(input));
    }

    [Fact]
    public void InspectListsTheSitesAndThePlan()
    {
        var result = Cli("inspect", Path.Combine(SampleDir, "model.onnx"));
        Assert.Equal(0, result.Code);
        Assert.Contains("attention sites: 2", result.Out);
        Assert.Contains("/layers.1/attn/Attention", result.Out);
        Assert.Contains("past_key_values.0.key, past_key_values.0.value", result.Out);
        Assert.Contains("replace with com.ortsparse.SparseAttention", result.Out);
    }

    [Fact]
    public void GarbageModelGivesAClearError()
    {
        var garbage = Path.Combine(_scratch, "garbage.onnx");
        File.WriteAllBytes(garbage, [0xff, 0xfe, 0x01, 0x02, 0x03]);

        var inspect = Cli("inspect", garbage);
        Assert.Equal(CliApp.Failed, inspect.Code);
        Assert.Contains("garbage.onnx", inspect.Err);
        Assert.Contains("not an ONNX model", inspect.Err);

        var missing = Cli("patch", Path.Combine(_scratch, "missing.onnx"), "-o", Path.Combine(_scratch, "out.onnx"));
        Assert.Equal(CliApp.Failed, missing.Code);
        Assert.Contains("missing.onnx", missing.Err);
        Assert.False(File.Exists(Path.Combine(_scratch, "out.onnx")));
    }

    [Fact]
    public void PatchHelpListsEveryMethodAndItsParameters()
    {
        var help = Cli("patch", "--help");
        Assert.Equal(0, help.Code);
        foreach (var method in MethodCatalog.All)
        {
            Assert.Contains($"  {method.Name,-10} {method.Summary}", help.Out);
        }
        Assert.Contains("  hyper      HyperAttention prefill", help.Out);
        Assert.Contains("--bits         LSH hyperplanes per KV head, 1 to 24 (drawn by patch) (default 12)", help.Out);
    }

    [Theory]
    [InlineData(new[] { "frobnicate" }, "unknown command 'frobnicate'")]
    [InlineData(new[] { "patch", "in.onnx" }, "patch needs -o OUT.onnx")]
    [InlineData(new[] { "patch", "in.onnx", "-o", "out.onnx", "--method", "magic" }, "Unknown method 'magic' (available: dense, topk, streaming, loki, quest, saap, hash, block, hyper).")]
    [InlineData(new[] { "patch", "in.onnx", "-o", "out.onnx", "--budjet", "0.1" }, "unknown option --budjet")]
    [InlineData(new[] { "patch", "in.onnx", "-o", "out.onnx", "--budget", "0.1" }, "Method 'dense' takes no parameters, got 'budget'.")]
    [InlineData(new[] { "patch", "in.onnx", "-o", "out.onnx", "--method", "quest", "--rank", "8" }, "Method 'quest' has no parameter 'rank' (it takes: budget, sink, window, dense_below, page_size).")]
    [InlineData(new[] { "patch", "in.onnx", "-o", "out.onnx", "--method", "quest", "--page-size", "2.5" }, "Parameter 'page_size' of method 'quest' must be an integer, got 2.5.")]
    [InlineData(new[] { "check", "model.onnx" }, "check takes a MODEL and at least one DATASET_DIR")]
    [InlineData(new[] { "check", "m.onnx", "d", "--atol", "abc" }, "--atol expects a number, got 'abc'")]
    [InlineData(new[] { "check", "m.onnx", "d", "--device", "tpu" }, "unknown device 'tpu' (cpu, cuda)")]
    [InlineData(new[] { "bench", "attention", "--heads", "12", "--kv-heads", "5" }, "--heads (12) must be a multiple of --kv-heads (5)")]
    public void UsageErrorsSayWhatIsWrong(string[] args, string message)
    {
        var result = Cli(args);
        Assert.Equal(CliApp.Usage, result.Code);
        Assert.Contains(message, result.Err);
    }

    /// <summary>
    /// The checkout: above the test assembly, or, for tests published outside it (the GPU host, where
    /// the test runner works in its own folder), ORTSPARSE_REPOSITORY_ROOT or above the working directory.
    /// </summary>
    internal static string RepositoryRoot()
    {
        var named = Environment.GetEnvironmentVariable("ORTSPARSE_REPOSITORY_ROOT");
        foreach (var start in new[] { AppContext.BaseDirectory, named, Environment.CurrentDirectory })
        {
            if (string.IsNullOrEmpty(start))
            {
                continue;
            }
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "OrtSparse.sln")))
                {
                    return dir.FullName;
                }
            }
        }
        throw new InvalidOperationException(
            $"no OrtSparse.sln above {AppContext.BaseDirectory}, ORTSPARSE_REPOSITORY_ROOT ({named ?? "unset"}) or {Environment.CurrentDirectory}");
    }
}
