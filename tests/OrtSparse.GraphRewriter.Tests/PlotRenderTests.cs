using OrtSparse.Cli.Plot;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>LinePlot: axis mapping, ticks, and what the rendered PNG shows where.</summary>
public sealed class PlotRenderTests
{
    private static PlotSeries Series(string name, params (double X, double Y)[] points) =>
        new(name, points.Select(p => new PlotPoint(p.X, p.Y)));

    private static DecodedPng RenderPng(LinePlot plot) => PlotPngDecoder.Decode(plot.Render().ToPng());

    private static (byte R, byte G, byte B) Bytes(Rgb color) => (color.R, color.G, color.B);

    private static (int X, int Y) PixelOf(PlotLayout layout, double x, double y) =>
        ((int)Math.Floor(layout.MapX(x)), (int)Math.Floor(layout.MapY(y)));

    [Fact]
    public void DataPointsShowTheirSeriesColourOnAWhiteBackgroundWithTheLegendBesideTheData()
    {
        var plot = new LinePlot(640, 400) { Title = "two series" };
        plot.Series.Add(Series("up", (1, 1), (2, 4), (3, 9)));
        plot.Series.Add(Series("down", (1, 8), (2, 6), (3, 2)));
        plot.X.Label = "x";
        plot.Y.Label = "y";

        var layout = plot.Layout();
        var png = RenderPng(plot);

        Assert.Equal((640, 400, 3), (png.Width, png.Height, png.Channels));
        Assert.Equal([Palette.Series[0], Palette.Series[1]], layout.Styles.Select(s => s.Color));
        foreach (var (series, style) in plot.Series.Zip(layout.Styles))
        {
            foreach (var point in series.Points)
            {
                var (x, y) = PixelOf(layout, point.X, point.Y);
                Assert.True(layout.PlotArea.Contains(x, y));
                Assert.Equal(Bytes(style.Color), png.Pixel(x, y));
            }
        }
        foreach (var (x, y) in new[] { (0, 0), (639, 0), (0, 399), (639, 399), (3, 200) })
        {
            Assert.Equal((255, 255, 255), png.Pixel(x, y));
        }
        var legend = Assert.NotNull(layout.LegendArea);
        Assert.False(legend.IntersectsWith(layout.PlotArea));
        Assert.True(legend.Left >= layout.PlotArea.Right && legend.Right <= 640 && legend.Bottom <= 400);
    }

    [Theory]
    [InlineData(AxisScale.Linear, 0.0, 10.0)]
    [InlineData(AxisScale.Linear, -3.5, 250.0)]
    [InlineData(AxisScale.Log10, 0.055, 0.76)]
    [InlineData(AxisScale.Log10, 32768.0, 524288.0)]
    [InlineData(AxisScale.Log10, 1e-3, 1e5)]
    public void AxesMapValuesLinearlyOrLogarithmicallyOntoThePlotArea(AxisScale scale, double low, double high)
    {
        var plot = new LinePlot(800, 500);
        plot.X.Scale = plot.Y.Scale = scale;
        var middle = scale == AxisScale.Log10 ? Math.Sqrt(low * high) : (low + high) / 2;
        plot.Series.Add(Series("s", (low, low), (middle, high), (high, middle)));

        var layout = plot.Layout();
        var area = layout.PlotArea;
        double T(double v) => scale == AxisScale.Log10 ? Math.Log10(v) : v;

        Assert.True(layout.XRange.Min < low && layout.XRange.Max > high);
        foreach (var value in new[] { low, middle, high })
        {
            var expectedX = area.Left + ((T(value) - T(layout.XRange.Min)) / (T(layout.XRange.Max) - T(layout.XRange.Min)) * area.Width);
            var expectedY = area.Top + area.Height - ((T(value) - T(layout.YRange.Min)) / (T(layout.YRange.Max) - T(layout.YRange.Min)) * area.Height);
            Assert.Equal(expectedX, layout.MapX(value), 9);
            Assert.Equal(expectedY, layout.MapY(value), 9);
        }
        Assert.Equal(area.Left, layout.MapX(layout.XRange.Min), 9);
        Assert.Equal(area.Right, layout.MapX(layout.XRange.Max), 9);
        Assert.Equal(area.Bottom, layout.MapY(layout.YRange.Min), 9);
        Assert.Equal(area.Top, layout.MapY(layout.YRange.Max), 9);
        Assert.All(layout.XTicks, t => Assert.InRange(layout.MapX(t.Value), area.Left - 1e-6, area.Right + 1e-6));
        Assert.All(layout.YTicks, t => Assert.InRange(layout.MapY(t.Value), area.Top - 1e-6, area.Bottom + 1e-6));
    }

    [Fact]
    public void TicksAreNiceStepsPowersOfTenOrPowersOfTwo()
    {
        var plot = new LinePlot(900, 560);
        plot.X.Scale = plot.Y.Scale = AxisScale.Log10;
        plot.Series.Add(Series("latency", (32768, 0.055), (131072, 0.19), (524288, 0.76)));
        var log = plot.Layout();
        Assert.Equal(["32k", "64k", "128k", "256k", "512k"], log.XTicks.Where(t => t.Label is not null).Select(t => t.Label));
        Assert.Equal([0.05, 0.1, 0.2, 0.5], log.YTicks.Where(t => t.Label is not null).Select(t => t.Value));
        Assert.Equal(["0.05", "0.1", "0.2", "0.5"], log.YTicks.Where(t => t.Label is not null).Select(t => t.Label));
        Assert.Contains(log.YTicks, t => t.Label is null && Math.Abs(t.Value - 0.3) < 1e-12); // minor grid line

        plot.X.Scale = plot.Y.Scale = AxisScale.Linear;
        var linear = plot.Layout();
        foreach (var ticks in new[] { linear.XTicks, linear.YTicks })
        {
            var steps = ticks.Zip(ticks.Skip(1), (a, b) => b.Value - a.Value).ToList();
            Assert.InRange(ticks.Count, 3, 12);
            Assert.All(steps, s => Assert.Equal(steps[0], s, 6));
            var mantissa = steps[0] / Math.Pow(10, Math.Floor(Math.Log10(steps[0])));
            Assert.Contains(Math.Round(mantissa, 6), new[] { 1.0, 2.0, 5.0 });
            Assert.All(ticks, t => Assert.Equal(Math.Round(t.Value / steps[0]), t.Value / steps[0], 6));
        }
    }

    [Theory]
    [InlineData(4096.0, "4k")]
    [InlineData(131072.0, "128k")]
    [InlineData(524288.0, "512k")]
    [InlineData(1048576.0, "1M")]
    [InlineData(1000.0, "1000")]
    [InlineData(1536.0, "1536")]
    [InlineData(0.5, "0.5")]
    public void BinaryTickLabels(double value, string label) => Assert.Equal(label, TickFormats.Binary(value));

    [Theory]
    [InlineData(0.30000000000000004, "0.3")]
    [InlineData(0.05, "0.05")]
    [InlineData(0.0, "0")]
    [InlineData(-2000.0, "-2000")]
    [InlineData(100000.0, "100k")]
    [InlineData(2500000.0, "2.5M")]
    [InlineData(0.00001, "1e-5")]
    public void CompactTickLabels(double value, string label) => Assert.Equal(label, TickFormats.Compact(value));

    [Fact]
    public void AMissingPointBreaksTheLine()
    {
        var broken = new LinePlot(500, 400);
        broken.Series.Add(Series("s", (1, 1), (2, double.NaN), (3, 3)));
        var whole = new LinePlot(500, 400);
        whole.Series.Add(Series("s", (1, 1), (3, 3)));

        var layout = broken.Layout();
        Assert.Equal(layout.PlotArea, whole.Layout().PlotArea);
        var (x, y) = PixelOf(layout, 2, 2);
        var color = Bytes(layout.Styles[0].Color);
        Assert.Equal(color, RenderPng(whole).Pixel(x, y));
        Assert.NotEqual(color, RenderPng(broken).Pixel(x, y));
        Assert.Equal(color, RenderPng(broken).Pixel(PixelOf(layout, 3, 3).X, PixelOf(layout, 3, 3).Y));
    }

    [Fact]
    public void ASinglePointAndEqualValuesSitInTheMiddle()
    {
        var plot = new LinePlot(500, 400);
        plot.Series.Add(Series("one", (5, 7)));
        var layout = plot.Layout();
        var area = layout.PlotArea;
        Assert.Equal(area.Left + (area.Width / 2.0), layout.MapX(5), 6);
        Assert.Equal(area.Top + (area.Height / 2.0), layout.MapY(7), 6);
        Assert.Null(layout.LegendArea);
        Assert.Equal(Bytes(layout.Styles[0].Color), RenderPng(plot).Pixel(PixelOf(layout, 5, 7).X, PixelOf(layout, 5, 7).Y));

        var flat = new LinePlot(500, 400);
        flat.Y.Scale = AxisScale.Log10;
        flat.Series.Add(Series("flat", (1, 3), (2, 3), (4, 3)));
        var flatLayout = flat.Layout();
        Assert.Equal(flatLayout.PlotArea.Top + (flatLayout.PlotArea.Height / 2.0), flatLayout.MapY(3), 6);
        var png = RenderPng(flat);
        Assert.Equal(Bytes(flatLayout.Styles[0].Color), png.Pixel(PixelOf(flatLayout, 1.5, 3).X, PixelOf(flatLayout, 1.5, 3).Y));
    }

    [Fact]
    public void ABaselineIsDashedAndOtherLinesAreSolid()
    {
        var plot = new LinePlot(600, 400);
        plot.Series.Add(Series("method", (0, 1), (10, 1)));
        plot.Series.Add(new PlotSeries("baseline", [new PlotPoint(0, 2), new PlotPoint(10, 2)]) { IsBaseline = true });
        var layout = plot.Layout();
        var png = RenderPng(plot);
        Assert.True(layout.Styles[1].Dashed);
        Assert.Equal(Palette.Baselines[0], layout.Styles[1].Color);

        // Along each line, away from the markers at its ends.
        var columns = Enumerable.Range((int)layout.MapX(1), (int)(layout.MapX(9) - layout.MapX(1))).ToList();
        var solid = columns.Select(x => png.Pixel(x, (int)Math.Floor(layout.MapY(1)))).ToList();
        var dashed = columns.Select(x => png.Pixel(x, (int)Math.Floor(layout.MapY(2)))).ToList();
        Assert.All(solid, p => Assert.Equal(Bytes(layout.Styles[0].Color), p));
        var black = dashed.Count(p => p == (0, 0, 0));
        Assert.True(black > columns.Count / 3 && black < columns.Count * 5 / 6, $"{black} of {columns.Count} pixels along the baseline are black");
    }

    [Theory]
    [InlineData("x", 0.0, "series 'bad', point 2 (0, 5): x value 0 cannot go on a logarithmic x axis, which needs positive values")]
    [InlineData("y", -1.5, "series 'bad', point 2 (4, -1.5): y value -1.5 cannot go on a logarithmic y axis, which needs positive values")]
    public void ANonPositiveValueOnALogAxisNamesTheSeriesAndValue(string axis, double value, string message)
    {
        var plot = new LinePlot(500, 400);
        (axis == "x" ? plot.X : plot.Y).Scale = AxisScale.Log10;
        plot.Series.Add(Series("good", (1, 1), (2, 2)));
        plot.Series.Add(Series("bad", (1, 1), axis == "x" ? (value, 5) : (4, value)));

        var error = Assert.Throws<ArgumentException>(plot.Render);
        Assert.Equal(message, error.Message);
    }
}
