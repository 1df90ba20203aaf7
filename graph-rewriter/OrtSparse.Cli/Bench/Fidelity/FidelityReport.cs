using System.Globalization;
using System.Text;
using OrtSparse.Cli.Plot;
using OrtSparse.Onnx;

namespace OrtSparse.Cli.Bench.Fidelity;

/// <summary>The fidelity benchmark's results for people and tools: a console table, fidelity.csv, fidelity.md and PNG plots.</summary>
public static class FidelityReport
{
    /// <summary>The plots <see cref="Write"/> makes, by file name (the recall plot only with recall, the needle plot only with needles at the trained context).</summary>
    public static IReadOnlyList<string> PlotFiles { get; } = ["fidelity-perplexity.png", "fidelity-needle.png", "fidelity-top1.png", "fidelity-recall.png"];

    /// <summary>Writes the summary table and its notes to <paramref name="writer"/>.</summary>
    public static void WriteTable(TextWriter writer, FidelityResult result)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(result);
        writer.WriteLine(Describe(result));
        writer.WriteLine();
        Table.Write(writer, SummaryHeader(result.Settings), SummaryRows(result));
        foreach (var note in Notes(result))
        {
            writer.WriteLine($"  {note}");
        }
    }

    /// <summary>
    /// Writes <c>fidelity.csv</c>, <c>fidelity.md</c> and the plots into <paramref name="folder"/> (created if needed),
    /// each file whole or not at all.
    /// </summary>
    /// <param name="folder">The output folder.</param>
    /// <param name="result">The results.</param>
    /// <param name="commandLine">The command line that made them, for fidelity.md.</param>
    /// <returns>The files written.</returns>
    public static IReadOnlyList<string> Write(string folder, FidelityResult result, string commandLine)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        ArgumentNullException.ThrowIfNull(result);
        var plots = Plots(result);
        var written = new List<string>
        {
            WriteFile(folder, "fidelity.csv", Encoding.UTF8.GetBytes(Csv(result))),
            WriteFile(folder, "fidelity.md", Encoding.UTF8.GetBytes(Markdown(result, commandLine, plots.Select(p => p.File).ToList()))),
        };
        written.AddRange(plots.Select(p => WriteFile(folder, p.File, p.Plot.Render().ToPng())));
        return written;
    }

    /// <summary>One line: the model, the text and what was scored.</summary>
    private static string Describe(FidelityResult result)
    {
        var s = result.Settings;
        var needles = s.NeedleLengths.Count == 0 ? "no needles"
            : $"needles at {string.Join(", ", s.NeedleLengths)} tokens, depths {string.Join(", ", s.NeedleDepths)}%, {s.NeedleTrials} trials each";
        return string.Create(CultureInfo.InvariantCulture,
            $"fidelity of {s.ModelPath} on {result.HeldOutTokens} held-out tokens: {s.PerplexityWindows} windows of {s.Context}, the last {s.PerplexityTokens} scored " +
            $"by decode steps; {needles}; {(s.Device == Runtime.ExecutionDevice.Cuda ? "cuda" : "cpu")}, {result.Elapsed.TotalSeconds:F0} s");
    }

    private static IEnumerable<string> Notes(FidelityResult result)
    {
        var s = result.Settings;
        if (s.Methods.Contains("streaming"))
        {
            // Integers only: no culture-dependent formatting.
            var window = FidelityBenchmark.StreamingWindow(0, s.Context, s.Parameters);
            yield return $"streaming ignores the budget: at budget b it runs with window {window} + ceil(b * {s.Context}), as many keys as the others read at the trained context";
        }
        if (s.DenseLayers > 0)
        {
            yield return $"layers 0 to {s.DenseLayers - 1} are dense in every sparse config: they read their whole cache, so a config reads more than its budget";
        }
        if (s.Methods.Contains("hash"))
        {
            yield return "hash's prefill is its own bucketed attention (docs/ops.md), not exact: its rows include that error";
        }
        if (!result.Rows.Any(r => r.LayerRecall is not null))
        {
            yield return "recall: not measured in this run";
        }
    }

    private static List<string> SummaryHeader(FidelitySettings s) =>
        ["method", "budget", "perplexity", "vs dense", "top-1", $"needle@{s.Context}", $"needle@{2 * s.Context}", "recall"];

    private static List<string[]> SummaryRows(FidelityResult result)
    {
        var dense = result.Rows[0].Perplexity;
        var context = result.Settings.Context;
        return result.Rows.Select(r => new[]
        {
            r.Method, r.Budget is { } b ? FidelityBenchmark.FormatBudget(b) : "-", Number(r.Perplexity, "F3"),
            r.Budget is null ? "-" : (r.Perplexity / dense - 1).ToString("+0.00%;-0.00%;0.00%", CultureInfo.InvariantCulture),
            Number(r.Top1Agreement, "F3"), Needle(r, context), Needle(r, 2 * context), r.MeanRecall is { } recall ? Number(recall, "F3") : "-",
        }).ToList();
    }

    private static string Needle(FidelityRow row, int length) =>
        row.NeedleByLength.TryGetValue(length, out var found) ? Number(found, "F2") : "-";

    private static string Number(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);

    private static string Raw(double? value) => value is { } v ? v.ToString("R", CultureInfo.InvariantCulture) : "";

    /// <summary>One row per config: every number the run measured.</summary>
    private static string Csv(FidelityResult result)
    {
        var s = result.Settings;
        var depthKeys = s.NeedleLengths.SelectMany(l => s.NeedleDepths.Select(d => (l, d))).ToList();
        var layers = result.Rows.Max(r => r.LayerRecall?.Count ?? 0);
        var header = new List<string> { "method", "budget", "parameters", "perplexity", "top1_agreement" };
        header.AddRange(s.NeedleLengths.Select(l => $"needle_{l}"));
        header.AddRange(depthKeys.Select(k => $"needle_{k.l}_d{k.d}"));
        header.Add("recall_mean");
        header.AddRange(Enumerable.Range(0, layers).Select(l => $"recall_layer{l}"));
        var text = new StringBuilder().AppendJoin(',', header).Append('\n');
        foreach (var r in result.Rows)
        {
            var cells = new List<string>
            {
                r.Method, Raw(r.Budget),
                string.Join(' ', r.Config.Parameters.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Key}={p.Value}"))),
                Raw(r.Perplexity), Raw(r.Top1Agreement),
            };
            cells.AddRange(s.NeedleLengths.Select(l => Raw(r.NeedleByLength[l])));
            cells.AddRange(depthKeys.Select(k => Raw(r.NeedleByLengthDepth[(k.l, k.d)])));
            cells.Add(Raw(r.MeanRecall));
            cells.AddRange(Enumerable.Range(0, layers).Select(l => r.LayerRecall is { } recall && l < recall.Count ? Raw(recall[l]) : ""));
            text.AppendJoin(',', cells).Append('\n');
        }
        return text.ToString();
    }

    private static string Markdown(FidelityResult result, string commandLine, IReadOnlyList<string> plots)
    {
        var s = result.Settings;
        var text = new StringBuilder();
        text.Append("# Fidelity of the sparse methods\n\n");
        text.Append(CultureInfo.InvariantCulture, $"```sh\n{commandLine}\n```\n\n");
        text.Append(Describe(result)).Append(".\n\n");
        AppendTable(text, SummaryHeader(s), SummaryRows(result));
        text.Append('\n');
        foreach (var note in Notes(result))
        {
            text.Append("- ").Append(note).Append('\n');
        }
        if (s.NeedleLengths.Count > 0)
        {
            text.Append("\n## Needle accuracy by prompt length\n\n");
            AppendTable(text, ["method", "budget", .. s.NeedleLengths.Select(l => l.ToString(CultureInfo.InvariantCulture))],
                result.Rows.Select(r => new[] { r.Method, r.Budget is { } b ? FidelityBenchmark.FormatBudget(b) : "-" }
                    .Concat(s.NeedleLengths.Select(l => Number(r.NeedleByLength[l], "F2"))).ToArray()).ToList());
        }
        var layers = result.Rows.Max(r => r.LayerRecall?.Count ?? 0);
        if (layers > 0)
        {
            text.Append(CultureInfo.InvariantCulture, $"\n## Attention recall per layer ({s.RecallQueries} captured queries)\n\n");
            AppendTable(text, ["method", "budget", "mean", .. Enumerable.Range(0, layers).Select(l => $"layer {l}")],
                result.Rows.Where(r => r.LayerRecall is not null).Select(r => new[] { r.Method, FidelityBenchmark.FormatBudget(r.Budget!.Value), Number(r.MeanRecall!.Value, "F3") }
                    .Concat(Enumerable.Range(0, layers).Select(l => l < r.LayerRecall!.Count ? Number(r.LayerRecall[l], "F3") : "-")).ToArray()).ToList());
        }
        if (plots.Count > 0)
        {
            text.Append("\n## Plots\n\n");
            foreach (var plot in plots)
            {
                text.Append(CultureInfo.InvariantCulture, $"![{Path.GetFileNameWithoutExtension(plot)}]({plot})\n");
            }
        }
        return text.ToString();
    }

    private static void AppendTable(StringBuilder text, IReadOnlyList<string> header, IReadOnlyList<string[]> rows)
    {
        text.Append("| ").AppendJoin(" | ", header).Append(" |\n");
        text.Append('|').AppendJoin('|', header.Select(_ => "---")).Append("|\n");
        foreach (var row in rows)
        {
            text.Append("| ").AppendJoin(" | ", row).Append(" |\n");
        }
    }

    /// <summary>The plots with data: one line per method over the budgets (log2 axis), dense as a dashed reference where it has a value.</summary>
    private static List<(string File, LinePlot Plot)> Plots(FidelityResult result)
    {
        var s = result.Settings;
        var dense = result.Rows[0];
        var plots = new List<(string, LinePlot)>
        {
            (PlotFiles[0], Plot(result, "Held-out perplexity (decode)", "perplexity", r => r.Perplexity, dense.Perplexity)),
        };
        if (dense.NeedleByLength.TryGetValue(s.Context, out var denseNeedle))
        {
            plots.Add((PlotFiles[1], Plot(result, $"Needle-in-code accuracy at {s.Context} tokens", "needles found", r => r.NeedleByLength[s.Context], denseNeedle)));
        }
        plots.Add((PlotFiles[2], Plot(result, "Top-1 agreement with dense", "top-1 agreement", r => r.Top1Agreement, null)));
        if (result.Rows.Any(r => r.MeanRecall is not null))
        {
            plots.Add((PlotFiles[3], Plot(result, "Attention recall (mean over layers)", "recall", r => r.MeanRecall ?? double.NaN, null)));
        }
        return plots;
    }

    private static LinePlot Plot(FidelityResult result, string title, string yLabel, Func<FidelityRow, double> value, double? denseValue)
    {
        var plot = new LinePlot(900, 560) { Title = title };
        plot.X.Label = "budget (share of the cache)";
        plot.X.Scale = AxisScale.Log10;
        plot.X.Ticks = TickSpacing.PowersOfTwo;
        plot.X.TickFormatter = FidelityBenchmark.FormatBudget;
        plot.Y.Label = yLabel;
        var sparse = result.Rows.Where(r => r.Budget is not null).ToList();
        foreach (var method in sparse.GroupBy(r => r.Method))
        {
            plot.Series.Add(new PlotSeries(method.Key, method.OrderBy(r => r.Budget).Select(r => new PlotPoint(r.Budget!.Value, value(r)))));
        }
        if (denseValue is { } reference)
        {
            var budgets = sparse.Select(r => r.Budget!.Value).ToList();
            plot.Series.Add(new PlotSeries("dense", [new PlotPoint(budgets.Min(), reference), new PlotPoint(budgets.Max(), reference)]) { IsBaseline = true });
        }
        return plot;
    }

    private static string WriteFile(string folder, string name, byte[] bytes)
    {
        var path = Path.GetFullPath(Path.Combine(folder, name));
        using var file = new PendingFile(path);
        file.Stream.Write(bytes);
        file.Commit();
        return path;
    }
}
