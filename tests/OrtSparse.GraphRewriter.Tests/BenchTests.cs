using System.Text.Json;
using OrtSparse.Cli;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>The attention benchmark on a small cache: it must measure what it claims (dense reads everything, topk finds the planted needles).</summary>
public sealed class BenchTests
{
    [Fact]
    public void BenchAttentionReportsEveryMethodAgainstDense()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = CliApp.Run(["bench", "attention", "--context", "2048", "--heads", "4", "--kv-heads", "2", "--head-dim", "64",
            "--steps", "2", "--warmup", "0", "--needles", "4", "--json"], stdout, stderr);
        Assert.True(code == 0, stderr.ToString());

        var rows = JsonDocument.Parse(stdout.ToString()).RootElement.EnumerateArray().ToDictionary(r => r.GetProperty("method").GetString()!);
        Assert.Equal(["dense", "topk", "streaming", "loki", "quest", "saap", "hash"], rows.Keys);
        var dense = rows["dense"];
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
}
