using System.Text.Json;
using OrtSparse.Calibration;
using OrtSparse.Cli;
using OrtSparse.Onnx;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary><c>ortsparse capture</c> and <c>bench attention --cache</c>: a real sequence's cache, captured and benchmarked.</summary>
public sealed class CaptureTests : IDisposable
{
    private const int Tokens = 1500;
    private readonly string _scratch = Directory.CreateTempSubdirectory("ortsparse-capture-").FullName;

    public void Dispose() => Directory.Delete(_scratch, recursive: true);

    private static string Sample => Path.Combine(CliTests.RepositoryRoot(), "models", "sample", "model.onnx");

    private (string Path, long[] Tokens) Capture(params string[] extra)
    {
        var random = new Random(7);
        var tokens = Enumerable.Range(0, Tokens).Select(_ => (long)random.Next(256)).ToArray();
        var tokenFile = Path.Combine(_scratch, "tokens.txt");
        File.WriteAllText(tokenFile, string.Join(' ', tokens));
        var output = Path.Combine(_scratch, "cache.onnx");
        var stderr = new StringWriter();
        var code = CliApp.Run(["capture", Sample, "--tokens", tokenFile, "-o", output, .. extra], new StringWriter(), stderr);
        Assert.True(code == 0, stderr.ToString());
        return (output, tokens);
    }

    [Fact]
    public void CapturedKeysAndValuesAreTheProjectedEmbeddings()
    {
        var (path, tokens) = Capture("--layers", "0");
        var capture = CalibrationData.Load(path);
        Assert.DoesNotContain(CalibrationNames.CapturedKeys(1), capture.TensorNames);

        // Layer 0 reads K = E[token]·Wk and V = E[token]·Wv: recompute them from the model's weights.
        var model = OnnxModel.Load(Sample);
        float[] Weight(string name) => OnnxTensor.ToFloats(model.Proto.Graph.Initializer.Single(i => i.Name == name), model.BaseDirectory);
        var embedding = Weight("embed_tokens.weight");
        var hidden = (int)model.Proto.Graph.Initializer.Single(i => i.Name == "embed_tokens.weight").Dims[1];
        foreach (var (name, weight) in new[] { (CalibrationNames.CapturedKeys(0), "k_proj"), (CalibrationNames.CapturedValues(0), "v_proj") })
        {
            var projection = model.Proto.Graph.Initializer.Single(i => i.Name.Contains("layers.0", StringComparison.Ordinal) && i.Name.Contains(weight, StringComparison.Ordinal));
            var w = OnnxTensor.ToFloats(projection, model.BaseDirectory);
            var width = (int)projection.Dims[1];
            var captured = capture.GetTensor(name);
            int kvHeads = captured.Shape[0], d = captured.Shape[2];
            Assert.Equal([width / d, Tokens, d], captured.Shape.ToArray());
            var values = captured.Values.Span;
            double worst = 0;
            foreach (var t in new[] { 0, 1, Tokens / 2, Tokens - 1 })
            {
                for (var column = 0; column < width; column++)
                {
                    double expected = 0;
                    for (var i = 0; i < hidden; i++)
                    {
                        expected += (double)embedding[tokens[t] * hidden + i] * w[i * width + column];
                    }
                    int head = column / d, dim = column % d;
                    worst = Math.Max(worst, Math.Abs(expected - values[(head * Tokens + t) * d + dim]));
                }
            }
            Assert.True(worst < 1e-4, $"{name}: max |captured - E·W| = {worst}");
            Assert.True(kvHeads >= 1);
        }
    }

    [Fact]
    public void BenchOnACapturedCacheTakesItsShapeAndMeasuresRecall()
    {
        var (path, _) = Capture();
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        // A budget covering the whole cache: every selecting method must attend everything.
        var code = CliApp.Run(["bench", "attention", "--cache", path, "--layer", "1", "--methods", "topk,quest,loki",
            "--budget", "1", "--steps", "1", "--warmup", "0", "--json"], stdout, stderr);
        Assert.True(code == 0, stderr.ToString());
        var rows = JsonDocument.Parse(stdout.ToString()).RootElement.EnumerateArray().ToList();
        Assert.Equal(["dense", "topk", "quest", "loki"], rows.Select(r => r.GetProperty("method").GetString()));
        foreach (var row in rows)
        {
            Assert.Equal(Tokens, row.GetProperty("context").GetInt32());
            Assert.Equal(JsonValueKind.Null, row.GetProperty("needle_recall").ValueKind);
            Assert.True(row.GetProperty("recall").GetDouble() > 0.99999, row.ToString());
            Assert.True(row.GetProperty("relative_error").GetDouble() < 1e-5, row.ToString());
        }
    }

    [Theory]
    [InlineData(new[] { "--context", "4096" }, "--context does not go with --cache")]
    [InlineData(new[] { "--layer", "7" }, "no captured layer 7")]
    public void BenchRejectsCacheMisuse(string[] extra, string message)
    {
        var (path, _) = Capture();
        var stderr = new StringWriter();
        var code = CliApp.Run(["bench", "attention", "--cache", path, .. extra], new StringWriter(), stderr);
        Assert.NotEqual(0, code);
        Assert.Contains(message, stderr.ToString());
    }

    [Fact]
    public void BenchRejectsALayerWithoutACache()
    {
        var stderr = new StringWriter();
        Assert.Equal(CliApp.Usage, CliApp.Run(["bench", "attention", "--layer", "1"], new StringWriter(), stderr));
        Assert.Contains("--layer picks a layer of --cache CACHE", stderr.ToString());
    }

    [Fact]
    public void CaptureRejectsALayerTheModelDoesNotHave()
    {
        var tokenFile = Path.Combine(_scratch, "t.txt");
        File.WriteAllText(tokenFile, "1 2 3");
        var stderr = new StringWriter();
        Assert.Equal(CliApp.Usage, CliApp.Run(["capture", Sample, "--tokens", tokenFile, "-o", Path.Combine(_scratch, "c.onnx"), "--layers", "2"], new StringWriter(), stderr));
        Assert.Contains("--layers: '2' is not a layer of this model (it has 2 attention layer(s), 0 to 1)", stderr.ToString());
    }
}
