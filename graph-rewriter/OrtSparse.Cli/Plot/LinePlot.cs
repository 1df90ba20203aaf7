using System.Globalization;

namespace OrtSparse.Cli.Plot;

/// <summary>
/// A line plot: series of points on linear or logarithmic axes, with a title, axis labels, grid lines
/// and a legend to the right of the data. <see cref="Layout"/> checks the data and places everything;
/// <see cref="Render"/> draws it.
/// </summary>
public sealed class LinePlot
{
    private static readonly Rgb TextColor = Rgb.FromHex("#222222");
    private static readonly Rgb FrameColor = Rgb.FromHex("#555555");
    private static readonly Rgb MajorGridColor = Rgb.FromHex("#DADADA");
    private static readonly Rgb MinorGridColor = Rgb.FromHex("#EFEFEF");
    private static readonly Rgb LegendBorderColor = Rgb.FromHex("#B0B0B0");

    private int _textScale = 2;

    /// <summary>An empty plot of <paramref name="width"/> × <paramref name="height"/> pixels.</summary>
    /// <param name="width">Image width, 200 to 16384.</param>
    /// <param name="height">Image height, 150 to 16384.</param>
    public LinePlot(int width, int height)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 200);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 150);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(width, 16384);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(height, 16384);
        (Width, Height) = (width, height);
    }

    /// <summary>Image width in pixels.</summary>
    public int Width { get; }

    /// <summary>Image height in pixels.</summary>
    public int Height { get; }

    /// <summary>The title above the plot; empty for none.</summary>
    public string Title { get; set; } = "";

    /// <summary>The horizontal axis.</summary>
    public PlotAxis X { get; } = new();

    /// <summary>The vertical axis.</summary>
    public PlotAxis Y { get; } = new();

    /// <summary>The series, drawn in this order (later ones on top) and listed so in the legend.</summary>
    public IList<PlotSeries> Series { get; } = [];

    /// <summary>Pixels per font pixel of labels (the title is one step larger), 1 to 8; line widths and markers scale with it.</summary>
    public int TextScale
    {
        get => _textScale;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, 8);
            _textScale = value;
        }
    }

    private int Unit => _textScale;

    private int Pad => 7 * Unit;

    private int TickLength => 3 * Unit;

    private int Gap => 3 * Unit;

    private double LineWidth => 1.25 * Unit;

    private double MarkerRadius => 2.5 * Unit;

    private int LegendSample => 24 * Unit;

    private Dash BaselineDash => new(6 * Unit, 3 * Unit);

    private int LegendRow => Math.Max(BitmapFont.Height(Unit), (int)Math.Ceiling(3 * MarkerRadius)) + (3 * Unit);

    /// <summary>
    /// Checks the data and places the plot area, legend, ranges and ticks. Throws <see cref="ArgumentException"/>
    /// naming the series and value for a value a log axis cannot show or an infinite one, when nothing
    /// is left to plot, for duplicate series names, and when the labels or legend leave no room for the data.
    /// </summary>
    public PlotLayout Layout()
    {
        if (Series.Count == 0)
        {
            throw new ArgumentException("a plot needs at least one series");
        }
        if (Series.GroupBy(s => s.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1) is { } duplicate)
        {
            throw new ArgumentException($"{duplicate.Count()} series are named '{duplicate.Key}'; legend entries must differ");
        }
        var xValues = AxisValues(X, "x", p => p.X);
        var yValues = AxisValues(Y, "y", p => p.Y);
        if (xValues.Count == 0)
        {
            throw new ArgumentException("nothing to plot: every point of every series is missing (NaN)");
        }
        var xRange = PaddedRange(xValues, X.Scale);
        var yRange = PaddedRange(yValues, Y.Scale);

        var font = BitmapFont.Height(Unit);
        var legend = LegendSize();
        var top = Pad + (Title.Length > 0 ? BitmapFont.Height(Unit + 1) + (3 * Unit) : font / 2);
        var bottom = Pad + (X.Label.Length > 0 ? font + (2 * Gap) : 0) + font + TickLength + Gap;
        var right = Pad + (legend is { } size ? size.Width + (6 * Unit) : 10 * Unit);
        var plotHeight = Height - top - bottom;
        RequireRoom(plotHeight, "high");
        double YPosition(AxisTick tick) => top + plotHeight - (PlotLayout.Fraction(tick.Value, yRange, Y.Scale) * plotHeight);
        var yTicks = AxisTicks.Choose(Y, yRange, yValues, ticks => LabelsApart(ticks, YPosition, _ => font, minimum: 18 * Unit));
        var yLabelWidth = yTicks.Where(t => t.Label is not null).Max(t => BitmapFont.Width(t.Label!, Unit));
        var left = Pad + (Y.Label.Length > 0 ? font + (2 * Gap) : 0) + yLabelWidth + Gap + TickLength;
        var plotWidth = Width - left - right;
        RequireRoom(plotWidth, "wide");
        double XPosition(AxisTick tick) => left + (PlotLayout.Fraction(tick.Value, xRange, X.Scale) * plotWidth);
        var xTicks = AxisTicks.Choose(X, xRange, xValues, ticks => LabelsApart(ticks, XPosition, t => BitmapFont.Width(t.Label!, Unit), minimum: 32 * Unit));
        var plotArea = new PixelRectangle(left, top, plotWidth, plotHeight);
        PixelRectangle? legendArea = legend is { } box ? new PixelRectangle(plotArea.Right + (6 * Unit), top, box.Width, box.Height) : null;
        if (legendArea is { } area && area.Bottom > Height - Pad)
        {
            throw new ArgumentException($"{Series.Count} series do not fit in the legend of a {Height}-pixel-high plot; plot fewer series or make it higher");
        }
        FitsAcross(Title, Unit + 1, Width, "the title", "wide");
        FitsAcross(X.Label, Unit, Width, "the x-axis label", "wide");
        FitsAcross(Y.Label, Unit, Height, "the y-axis label", "high");
        return new PlotLayout(plotArea, legendArea, (X.Scale, xRange, xTicks), (Y.Scale, yRange, yTicks), Styles());
    }

    /// <summary>Draws the plot.</summary>
    public Canvas Render()
    {
        var layout = Layout();
        var canvas = new Canvas(Width, Height, Rgb.White);
        var area = layout.PlotArea;
        foreach (var tick in layout.XTicks.OrderBy(t => t.Label is not null))
        {
            canvas.FillRectangle(Column(layout, tick.Value), area.Top, 1, area.Height, tick.Label is null ? MinorGridColor : MajorGridColor);
        }
        foreach (var tick in layout.YTicks.OrderBy(t => t.Label is not null))
        {
            canvas.FillRectangle(area.Left, Row(layout, tick.Value), area.Width, 1, tick.Label is null ? MinorGridColor : MajorGridColor);
        }
        for (var i = 0; i < Series.Count; i++)
        {
            DrawLine(canvas, layout, Series[i], layout.Styles[i]);
        }
        for (var i = 0; i < Series.Count; i++)
        {
            foreach (var point in Series[i].Points.Where(p => p.IsPresent))
            {
                DrawMarker(canvas, layout.Styles[i], layout.MapX(point.X), layout.MapY(point.Y));
            }
        }
        canvas.DrawRectangle(area.Left - 1, area.Top - 1, area.Width + 2, area.Height + 2, FrameColor);
        DrawAxes(canvas, layout);
        if (layout.LegendArea is { } legend)
        {
            DrawLegend(canvas, legend, layout.Styles);
        }
        return canvas;
    }

    private void DrawLine(Canvas canvas, PlotLayout layout, PlotSeries series, SeriesStyle style)
    {
        var run = new List<(double X, double Y)>();
        foreach (var point in series.Points.Append(new PlotPoint(double.NaN, double.NaN)))
        {
            if (point.IsPresent)
            {
                run.Add((layout.MapX(point.X), layout.MapY(point.Y)));
                continue;
            }
            if (run.Count >= 2)
            {
                canvas.DrawPolyline(run, style.Color, LineWidth, style.Dashed ? BaselineDash : null);
            }
            run.Clear();
        }
    }

    /// <summary>A marker with a thin white rim, so it stands out where lines cross.</summary>
    private void DrawMarker(Canvas canvas, SeriesStyle style, double x, double y)
    {
        canvas.DrawMarker(style.Marker, x, y, MarkerRadius + (0.6 * Unit), Rgb.White);
        canvas.DrawMarker(style.Marker, x, y, MarkerRadius, style.Color);
    }

    private void DrawAxes(Canvas canvas, PlotLayout layout)
    {
        var area = layout.PlotArea;
        var font = BitmapFont.Height(Unit);
        foreach (var tick in layout.XTicks.Where(t => t.Label is not null))
        {
            var column = Column(layout, tick.Value);
            canvas.FillRectangle(column, area.Bottom + 1, 1, TickLength, FrameColor);
            canvas.DrawText(tick.Label!, column - (BitmapFont.Width(tick.Label!, Unit) / 2), area.Bottom + 1 + TickLength + Gap, Unit, TextColor);
        }
        foreach (var tick in layout.YTicks.Where(t => t.Label is not null))
        {
            var row = Row(layout, tick.Value);
            canvas.FillRectangle(area.Left - 1 - TickLength, row, TickLength, 1, FrameColor);
            canvas.DrawText(tick.Label!, area.Left - 1 - TickLength - Gap - BitmapFont.Width(tick.Label!, Unit),
                            row - (BitmapFont.Ascent * Unit / 2), Unit, TextColor);
        }
        if (X.Label.Length > 0)
        {
            canvas.DrawText(X.Label, Centered(area.Left, area.Width, BitmapFont.Width(X.Label, Unit), Width),
                            area.Bottom + 1 + TickLength + Gap + font + (2 * Gap), Unit, TextColor);
        }
        if (Y.Label.Length > 0)
        {
            canvas.DrawTextVertical(Y.Label, Pad, Centered(area.Top, area.Height, BitmapFont.Width(Y.Label, Unit), Height), Unit, TextColor);
        }
        if (Title.Length > 0)
        {
            canvas.DrawText(Title, Centered(area.Left, area.Width, BitmapFont.Width(Title, Unit + 1), Width), Pad, Unit + 1, TextColor);
        }
    }

    private void DrawLegend(Canvas canvas, PixelRectangle legend, IReadOnlyList<SeriesStyle> styles)
    {
        canvas.FillRectangle(legend.Left, legend.Top, legend.Width, legend.Height, Rgb.White);
        canvas.DrawRectangle(legend.Left, legend.Top, legend.Width, legend.Height, LegendBorderColor);
        for (var i = 0; i < Series.Count; i++)
        {
            var middle = legend.Top + (2 * Unit) + (i * LegendRow) + (LegendRow / 2.0);
            var sampleLeft = legend.Left + (4 * Unit);
            canvas.DrawPolyline([(sampleLeft, middle), (sampleLeft + LegendSample, middle)], styles[i].Color, LineWidth,
                                styles[i].Dashed ? BaselineDash : null);
            DrawMarker(canvas, styles[i], sampleLeft + (LegendSample / 2.0), middle);
            canvas.DrawText(Series[i].Name, sampleLeft + LegendSample + (5 * Unit), (int)Math.Round(middle - (BitmapFont.Ascent * Unit / 2.0)), Unit, TextColor);
        }
    }

    /// <summary>The legend's size, or null when a single series needs none.</summary>
    private (int Width, int Height)? LegendSize() =>
        Series.Count < 2
            ? null
            : ((4 * Unit) + LegendSample + (5 * Unit) + Series.Max(s => BitmapFont.Width(s.Name, Unit)) + (4 * Unit),
               (4 * Unit) + (Series.Count * LegendRow));

    /// <summary>The present values of one coordinate over all series, after checking each can go on the axis.</summary>
    private List<double> AxisValues(PlotAxis axis, string name, Func<PlotPoint, double> coordinate)
    {
        var values = new List<double>();
        foreach (var series in Series)
        {
            for (var i = 0; i < series.Points.Count; i++)
            {
                if (!series.Points[i].IsPresent)
                {
                    continue;
                }
                var value = coordinate(series.Points[i]);
                var where = $"series '{series.Name}', point {i + 1} ({Invariant(series.Points[i].X)}, {Invariant(series.Points[i].Y)})";
                if (!double.IsFinite(value))
                {
                    throw new ArgumentException($"{where}: {name} is not finite; use NaN for a missing point");
                }
                if (axis.Scale == AxisScale.Log10 && value <= 0)
                {
                    throw new ArgumentException($"{where}: {name} value {Invariant(value)} cannot go on a logarithmic {name} axis, which needs positive values");
                }
                values.Add(value);
            }
        }
        return values;
    }

    /// <summary>The values' range widened by 6% on each side (in the axis's linear coordinate); one value gets a range around it.</summary>
    private static AxisRange PaddedRange(List<double> values, AxisScale scale)
    {
        var low = PlotLayout.Transform(values.Min(), scale);
        var high = PlotLayout.Transform(values.Max(), scale);
        var margin = high > low
            ? 0.06 * (high - low)
            : scale == AxisScale.Log10 ? 0.5 : low == 0 ? 1 : 0.1 * Math.Abs(low);
        return new AxisRange(PlotLayout.Untransform(low - margin, scale), PlotLayout.Untransform(high + margin, scale));
    }

    private List<SeriesStyle> Styles()
    {
        var (baselines, others) = (0, 0);
        return Series.Select((series, i) => series.Style ?? (series.IsBaseline
            ? new SeriesStyle(Palette.Baselines[baselines++ % Palette.Baselines.Count], Palette.Markers[i % Palette.Markers.Count], Dashed: true)
            : new SeriesStyle(Palette.Series[others++ % Palette.Series.Count], Palette.Markers[i % Palette.Markers.Count], Dashed: false))).ToList();
    }

    /// <summary>Whether consecutive labels, at <paramref name="position"/> with <paramref name="extent"/> along the axis, are at least <paramref name="minimum"/> apart and leave a gap.</summary>
    private bool LabelsApart(IReadOnlyList<AxisTick> ticks, Func<AxisTick, double> position, Func<AxisTick, double> extent, double minimum)
    {
        var labelled = ticks.Where(t => t.Label is not null).Select(t => (Position: position(t), Extent: extent(t))).OrderBy(t => t.Position).ToList();
        return labelled.Zip(labelled.Skip(1)).All(pair =>
            pair.Second.Position - pair.First.Position >= Math.Max(minimum, ((pair.First.Extent + pair.Second.Extent) / 2) + (6 * Unit)));
    }

    private void RequireRoom(int size, string direction)
    {
        if (size < 40 * Unit)
        {
            throw new ArgumentException(
                $"a {Width}×{Height} image leaves the data area {Math.Max(size, 0)} pixels {direction} after the title, labels and legend; make it larger or the labels shorter");
        }
    }

    private static void FitsAcross(string text, int scale, int room, string what, string direction)
    {
        if (BitmapFont.Width(text, scale) > room)
        {
            throw new ArgumentException($"{what} is {BitmapFont.Width(text, scale)} pixels long, more than the image is {direction} ({room}); shorten it");
        }
    }

    /// <summary>The start of <paramref name="length"/> centred on [start, start + span), moved inside [0, limit) if it sticks out.</summary>
    private static int Centered(int start, int span, int length, int limit) =>
        Math.Clamp(start + ((span - length) / 2), 0, Math.Max(limit - length, 0));

    private static int Column(PlotLayout layout, double x) =>
        Math.Clamp((int)Math.Floor(layout.MapX(x)), layout.PlotArea.Left, layout.PlotArea.Right - 1);

    private static int Row(PlotLayout layout, double y) =>
        Math.Clamp((int)Math.Floor(layout.MapY(y)), layout.PlotArea.Top, layout.PlotArea.Bottom - 1);

    private static string Invariant(double value) => value.ToString(CultureInfo.InvariantCulture);
}
