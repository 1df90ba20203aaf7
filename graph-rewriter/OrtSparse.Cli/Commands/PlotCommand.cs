using System.Globalization;
using OrtSparse.Cli.Plot;
using OrtSparse.Onnx;

namespace OrtSparse.Cli.Commands;

/// <summary><c>ortsparse plot DATA.csv -o OUT.png --x COLUMN --y COLUMN …</c>: a PNG line plot of columns of a CSV file.</summary>
internal static class PlotCommand
{
    private const string Usage = """
        usage: ortsparse plot DATA.csv -o OUT.png --x COLUMN --y COLUMN [--series COLUMN] [--where COLUMN=VALUE ...]
                              [--log-x] [--log-y] [--baseline SERIES ...] [--title TEXT] [--x-label TEXT] [--y-label TEXT]
                              [--width 900] [--height 560]

        Draws a line plot of DATA.csv (a header row of column names, then comma-separated rows; numbers
        as 1234.5 or 1e-3; fields may be "quoted"): one line per value of the --series column, in order
        of first appearance (one line without it; rows with an empty cell there form "(empty)"),
        through the rows' (--x, --y) points in order of x.
        An empty or NaN y is a missing point and breaks the line there; a row without x is left out.

          -o, --output         the PNG to write (never DATA.csv itself; written whole or not at all)
          --where COLUMN=VALUE keep only the rows whose COLUMN is VALUE (numbers compare as numbers);
                               repeat it: values of one column are alternatives, different columns must
                               all match
          --log-x, --log-y     logarithmic axis (its values must be positive); a log axis whose values
                               are all powers of two gets ticks at powers of two, labelled 32k, 128k, ...
          --baseline SERIES    draw that series dashed, in black (then greys); repeat it for several
          --title TEXT         title above the plot; --x-label, --y-label default to the column names
          --width, --height    image size in pixels (default 900 x 560)

        Series get the Okabe-Ito colour-blind-safe colours and each its own marker shape; the legend
        sits to the right of the data. Text is printable ASCII.
        """;

    public static int Run(string[] args, TextWriter stdout)
    {
        var line = CommandLine.Parse(args,
            ["-o", "--output", "--x", "--y", "--series", "--where", "--baseline", "--title", "--x-label", "--y-label", "--width", "--height"],
            ["--log-x", "--log-y", "--help", "-h"]);
        if (line.Flag("--help") || line.Flag("-h"))
        {
            stdout.WriteLine(Usage);
            return CliApp.Ok;
        }
        if (line.Positional.Count != 1)
        {
            throw new UsageException("plot takes exactly one DATA.csv");
        }
        var input = line.Positional[0];
        var output = line.Option("-o", "--output") ?? throw new UsageException("plot needs -o OUT.png");
        var xName = line.Option("--x") ?? throw new UsageException("plot needs --x COLUMN");
        var yName = line.Option("--y") ?? throw new UsageException("plot needs --y COLUMN");
        var width = line.Int("--width", 900, 200, 16384);
        var height = line.Int("--height", 560, 150, 16384);
        var conditions = line.Options("--where").Select(ParseCondition).ToList();
        ModelFiles.EnsureDistinct(input, output, inputKind: "data");

        var table = CsvTable.Load(input);
        var x = ColumnIndex(table, xName, "--x");
        var y = ColumnIndex(table, yName, "--y");
        var seriesColumn = line.Option("--series") is { } seriesName ? ColumnIndex(table, seriesName, "--series") : (int?)null;
        var filters = conditions.GroupBy(c => ColumnIndex(table, c.Column, "--where"), c => c.Value).ToList();
        var rows = table.Rows.Where(row => filters.All(f => f.Any(value => CellEquals(row.Fields[f.Key], value)))).ToList();
        if (rows.Count == 0)
        {
            throw new InvalidDataException(table.Rows.Count == 0
                ? $"{input} has a header but no rows"
                : $"no row of {input} matches {string.Join(" and ", conditions.Select(c => $"{c.Column}={c.Value}"))}; "
                  + string.Join("; ", filters.Select(f => $"{table.Columns[f.Key]} has {string.Join(", ", table.Rows.Select(r => r.Fields[f.Key]).Distinct().Take(12))}")));
        }

        var plot = new LinePlot(width, height) { Title = line.Option("--title") ?? "" };
        plot.X.Label = line.Option("--x-label") ?? xName;
        plot.Y.Label = line.Option("--y-label") ?? yName;
        plot.X.Scale = line.Flag("--log-x") ? AxisScale.Log10 : AxisScale.Linear;
        plot.Y.Scale = line.Flag("--log-y") ? AxisScale.Log10 : AxisScale.Linear;
        var baselines = line.Options("--baseline").ToHashSet(StringComparer.Ordinal);
        // A row with an empty series cell still belongs somewhere: the legend calls that series "(empty)".
        var groups = rows.GroupBy(row => seriesColumn is { } s ? row.Fields[s] is { Length: > 0 } name ? name : "(empty)" : yName, StringComparer.Ordinal).ToList();
        if (baselines.FirstOrDefault(b => groups.All(g => g.Key != b)) is { } unknown)
        {
            throw new UsageException($"--baseline {unknown}: no such series (series: {string.Join(", ", groups.Select(g => g.Key))})");
        }
        foreach (var group in groups)
        {
            var points = group.Select(row => (Row: row, Point: new PlotPoint(Number(table, row, x), Number(table, row, y))))
                .Where(p => !double.IsNaN(p.Point.X)).OrderBy(p => p.Point.X).ToList();
            if (points.Zip(points.Skip(1)).FirstOrDefault(pair => pair.First.Point.X == pair.Second.Point.X) is { First.Row: not null } same)
            {
                var differing = table.Columns.Where((_, c) => c != y && same.First.Row.Fields[c] != same.Second.Row.Fields[c]).ToList();
                throw new InvalidDataException(
                    $"{(seriesColumn is null ? "the data" : $"series '{group.Key}'")} has two rows with {xName} = {same.First.Row.Fields[x]} "
                    + $"(lines {same.First.Row.Line} and {same.Second.Row.Line} of {input}); a line needs one y per x: "
                    + (differing.Count > 0 ? $"narrow it with --where or --series (the rows differ in {string.Join(", ", differing)})" : "remove one"));
            }
            plot.Series.Add(new PlotSeries(group.Key, points.Select(p => p.Point)) { IsBaseline = baselines.Contains(group.Key) });
        }

        var png = plot.Render().ToPng();
        using (var file = new PendingFile(Path.GetFullPath(output)))
        {
            file.Stream.Write(png);
            file.Commit();
        }
        stdout.WriteLine($"plotted {plot.Series.Count} series, {plot.Series.Sum(s => s.Points.Count(p => p.IsPresent))} points -> {output}");
        return CliApp.Ok;
    }

    private static (string Column, string Value) ParseCondition(string text)
    {
        var equals = text.IndexOf('=');
        return equals > 0 ? (text[..equals].Trim(), text[(equals + 1)..].Trim()) : throw new UsageException($"--where expects COLUMN=VALUE, got '{text}'");
    }

    private static int ColumnIndex(CsvTable table, string name, string option)
    {
        var index = table.IndexOf(name);
        return index >= 0 ? index : throw new UsageException($"{option}: {table.Source} has no column '{name}' (columns: {string.Join(", ", table.Columns)})");
    }

    /// <summary>Equal as numbers when both are numbers (1 matches 1.0), otherwise as text.</summary>
    private static bool CellEquals(string cell, string value) =>
        TryNumber(cell, out var a) && TryNumber(value, out var b) ? a == b : string.Equals(cell, value, StringComparison.Ordinal);

    /// <summary>The cell as a number; an empty cell is NaN (missing).</summary>
    private static double Number(CsvTable table, CsvRow row, int column)
    {
        var cell = row.Fields[column];
        return cell.Length == 0 ? double.NaN
            : TryNumber(cell, out var value) ? value
            : throw new InvalidDataException($"{table.Source} line {row.Line}, column '{table.Columns[column]}': '{cell}' is not a number");
    }

    private static bool TryNumber(string text, out double value) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value);
}
