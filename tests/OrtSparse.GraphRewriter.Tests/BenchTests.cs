using System.Text.Json;
using Onnx;
using OrtSparse.Cli;
using OrtSparse.Cli.Bench;
using OrtSparse.Runtime;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>
/// The attention benchmark on a small cache: it must measure what it claims (dense reads everything,
/// topk finds the planted needles), its ONNX Runtime baseline must compute the same attention, and
/// its options and CSV output must say what they do. With ORTSPARSE_TEST_DEVICE=cuda the steps run
/// on the CUDA provider.
/// </summary>
public sealed class BenchTests : IDisposable
{
    private readonly string _scratch = Directory.CreateTempSubdirectory("ortsparse-bench-").FullName;

    public void Dispose() => Directory.Delete(_scratch, recursive: true);

    private static string[] SmallBench(int context, params string[] extra) =>
        ["bench", "attention", "--context", $"{context}", "--heads", "4", "--kv-heads", "2", "--head-dim", "64", "--steps", "2", "--warmup", "0", .. TestDevice.CliArgs, .. extra];

    [Fact]
    public void BenchAttentionReportsEveryMethodAgainstDense()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = CliApp.Run(SmallBench(2048, "--needles", "4", "--json"), stdout, stderr);
        Assert.True(code == 0, stderr.ToString());

        var rows = JsonDocument.Parse(stdout.ToString()).RootElement.EnumerateArray().ToDictionary(r => r.GetProperty("method").GetString()!);
        Assert.Equal(["dense", "topk", "streaming", "loki", "quest", "saap", "hash"], rows.Keys);
        var dense = rows["dense"];
        Assert.Equal(TestDevice.IsCuda ? "cuda" : "cpu", dense.GetProperty("device").GetString());
        Assert.Equal(1.0, dense.GetProperty("recall").GetDouble(), 9);
        Assert.Equal(1.0, dense.GetProperty("speedup_vs_dense").GetDouble(), 9);
        Assert.Equal(0.0, dense.GetProperty("relative_error").GetDouble());
        // Needles hold most of the attention: the exact top-k must find all of them and nearly all the mass.
        Assert.Equal(1.0, rows["topk"].GetProperty("needle_recall").GetDouble());
        Assert.True(rows["topk"].GetProperty("recall").GetDouble() >= 0.95);
        Assert.Equal(1.0, rows["topk"].GetProperty("topk_overlap").GetDouble());
        // Sink and window alone miss the needles planted in the middle.
        Assert.Equal(0.0, rows["streaming"].GetProperty("needle_recall").GetDouble());
        Assert.True(rows["quest"].GetProperty("bytes_read").GetDouble() < dense.GetProperty("bytes_read").GetDouble() / 4);
    }

    /// <summary>
    /// ONNX Runtime's GroupQueryAttention, bound as the comparison binds it (the cache as its shared
    /// past/present buffer, seqlens_k = T − 1, total_sequence_length = T), against our dense op on the
    /// same tensors: a wrong length, layout or head mapping in the baseline graph moves outputs by > 1e-2.
    /// </summary>
    [Theory]
    [InlineData(TensorProto.Types.DataType.Float)]
    [InlineData(TensorProto.Types.DataType.Float16)]
    public void GroupQueryAttentionBaselineMatchesDense(TensorProto.Types.DataType type)
    {
        if (TestDevice.IsCuda && type == TensorProto.Types.DataType.Float)
        {
            Assert.Skip("ONNX Runtime's GroupQueryAttention has CUDA kernels for fp16 and bf16 only");
        }
        TestDevice.EnsureOpRunsThere();
        var settings = new AttentionBenchSettings
        {
            Device = TestDevice.Current, Batch = 2, Context = 300, Heads = 4, KvHeads = 2, HeadDim = 64, ElementType = type,
            Methods = [], Steps = 1, Warmup = 0, Threads = 2, CompareGroupQueryAttention = true,
        };
        var cache = BenchCache.Synthetic(settings.Batch, settings.Context, settings.Heads, settings.KvHeads, settings.HeadDim, needles: 2, seed: 3);

        var report = AttentionBenchmark.Run(settings, cache, TextWriter.Null);

        var gqa = report.GroupQueryAttention!;
        Assert.Null(gqa.Error);
        Assert.True(gqa.MedianMs > 0);
        // fp32: both sum in fp32 in different orders (errors ~1e-7 on outputs in [-1, 1]); fp16: both
        // round the output to fp16, a few ulps at |o| ≤ 1 (as in AttentionEquivalenceTests).
        var tolerance = type == TensorProto.Types.DataType.Float ? 1e-5 : 2e-3;
        Assert.True(gqa.MaxAbsDiffVsDense <= tolerance, $"max |GQA - dense| {gqa.MaxAbsDiffVsDense:g3} over {type}");
        Assert.Equal("dense", Assert.Single(report.Methods).Method);
    }

    [Theory]
    [InlineData(new[] { "--dtype", "bf16" }, "--dtype bf16 needs --device cuda (the CPU kernels take fp32 and fp16)")]
    [InlineData(new[] { "--dtype", "fp8" }, "unknown dtype 'fp8' (fp32, fp16, bf16)")]
    [InlineData(new[] { "--device", "tpu" }, "unknown device 'tpu' (cpu, cuda)")]
    [InlineData(new[] { "--device", "cuda", "--head-dim", "32" }, "--device cuda: the CUDA kernels take head sizes 64, 80, 96, 128; the head size is 32")]
    [InlineData(new[] { "--device", "cuda", "--dtype", "bf16", "--methods", "quest,block" }, "bench attention times decode steps; 'block' is a prefill method")]
    [InlineData(new[] { "--compare-onnxruntime", "--cache", "x.cache" }, "--compare-onnxruntime on cpu runs on synthetic inputs; it does not take --cache")]
    [InlineData(new[] { "--csv" }, "--csv needs a value")]
    public void BenchOptionErrorsSayWhatIsWrong(string[] options, string message)
    {
        var result = CliTests.Cli(["bench", "attention", .. options]);
        Assert.Equal(CliApp.Usage, result.Code);
        Assert.Contains(message, result.Err);
    }

    [Fact]
    public void CudaWithoutTheProviderSaysWhatIsMissing()
    {
        string? installed = null;
        try
        {
            installed = NativeLibraries.ResolveCudaProvider();
        }
        catch (FileNotFoundException)
        {
        }
        if (installed is not null)
        {
            Assert.Skip($"a CUDA provider is installed here ({installed}); this test needs a machine without one");
        }
        var result = CliTests.Cli("bench", "attention", "--device", "cuda", "--context", "256", "--heads", "2", "--kv-heads", "1", "--head-dim", "64");
        Assert.Equal(CliApp.Failed, result.Code);
        Assert.StartsWith("ortsparse bench: --device cuda: libonnxruntime_providers_cuda.so not found (looked in: ", result.Err);
        Assert.Contains("fetch it with build/fetch-deps.sh --gpu and rebuild, or set ORTSPARSE_CUDA_PROVIDER.", result.Err);
        Assert.Equal("", result.Out);
    }

    [Fact]
    public void CsvStartsWithTheHeaderAndAppendsRows()
    {
        var path = Path.Combine(_scratch, "runs", "bench.csv");
        BenchCsv.Append(path, [new BenchCsvRow("cuda", 8, 4096, "dense", 0.25, 67108864, 1, 0), new BenchCsvRow("cuda", 8, 4096, "quest", 0.0625, 8.5e6, 0.93, 0.125)]);
        BenchCsv.Append(path, [new BenchCsvRow("cpu", 1, 2048, "onnxruntime-attention", 1.5, null, null, double.NaN)]);
        Assert.Equal(
            "device,batch,context,method,ms,bytes_read,recall,rel_error\n" +
            "cuda,8,4096,dense,0.25,67108864,1,0\n" +
            "cuda,8,4096,quest,0.0625,8500000,0.93,0.125\n" +
            "cpu,1,2048,onnxruntime-attention,1.5,,,\n",
            File.ReadAllText(path));
        Assert.Single(Directory.GetFiles(Path.GetDirectoryName(path)!));  // no temporary file left
    }

    [Fact]
    public void CsvRefusesAFileWithAnotherHeader()
    {
        var path = Path.Combine(_scratch, "other.csv");
        File.WriteAllText(path, "name,value\nx,1\n");
        var error = Assert.Throws<InvalidDataException>(() => BenchCsv.Append(path, [new BenchCsvRow("cpu", 1, 16, "dense", 1, 1, 1, 0)]));
        Assert.Equal($"{path} does not start with the bench CSV header 'device,batch,context,method,ms,bytes_read,recall,rel_error' (its first line is 'name,value'); " +
                     "name a new file or one that --csv wrote", error.Message);
        Assert.Equal("name,value\nx,1\n", File.ReadAllText(path));
    }

    [Fact]
    public void BenchWritesOneCsvRowPerMethod()
    {
        var path = Path.Combine(_scratch, "bench.csv");
        var result = CliTests.Cli(SmallBench(1024, "--methods", "topk", "--csv", path));
        Assert.True(result.Code == 0, result.Err);
        var lines = File.ReadAllLines(path);
        Assert.Equal(BenchCsv.Header, lines[0]);
        var device = TestDevice.IsCuda ? "cuda" : "cpu";
        Assert.Equal([$"{device},1,1024,dense", $"{device},1,1024,topk"], lines[1..].Select(l => string.Join(',', l.Split(',')[..4])));
        var dense = lines[1].Split(',').Skip(4).Select(f => double.Parse(f, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        Assert.True(dense[0] > 0);
        Assert.Equal(2.0 * 2 * 1024 * 64 * (TestDevice.IsCuda ? 2 : 4), dense[1]);  // every key and value of both KV heads, in the default fp32 (cpu) or fp16 (cuda)
        Assert.Equal(1.0, dense[2], 9);  // dense attends every key
        Assert.Equal(0.0, dense[3]);  // and is its own reference
    }
}
