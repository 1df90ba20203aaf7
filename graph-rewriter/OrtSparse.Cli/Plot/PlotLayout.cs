namespace OrtSparse.Cli.Plot;

/// <summary>
/// Where a <see cref="LinePlot"/> puts everything: the plot area, the legend beside it (never over the
/// data), each axis's range and ticks, and each series's style. Data map linearly (or linearly in
/// log10) from the axis range onto the plot area's edges: <see cref="AxisRange.Min"/> of x onto
/// <see cref="PixelRectangle.Left"/>, its <see cref="AxisRange.Max"/> onto <see cref="PixelRectangle.Right"/>,
/// y's minimum onto <see cref="PixelRectangle.Bottom"/> and its maximum onto <see cref="PixelRectangle.Top"/>.
/// </summary>
public sealed class PlotLayout
{
    private readonly AxisScale _xScale;
    private readonly AxisScale _yScale;

    internal PlotLayout(PixelRectangle plotArea, PixelRectangle? legendArea, (AxisScale Scale, AxisRange Range, IReadOnlyList<AxisTick> Ticks) x,
                        (AxisScale Scale, AxisRange Range, IReadOnlyList<AxisTick> Ticks) y, IReadOnlyList<SeriesStyle> styles)
    {
        PlotArea = plotArea;
        LegendArea = legendArea;
        (_xScale, XRange, XTicks) = x;
        (_yScale, YRange, YTicks) = y;
        Styles = styles;
    }

    /// <summary>The rectangle the data are drawn in; the frame lies just outside it.</summary>
    public PixelRectangle PlotArea { get; }

    /// <summary>The legend box, to the right of the plot area; null when there is one series only.</summary>
    public PixelRectangle? LegendArea { get; }

    /// <summary>The x values at the left and right edges of the plot area.</summary>
    public AxisRange XRange { get; }

    /// <summary>The y values at the bottom and top edges of the plot area.</summary>
    public AxisRange YRange { get; }

    /// <summary>The x axis's ticks, ascending.</summary>
    public IReadOnlyList<AxisTick> XTicks { get; }

    /// <summary>The y axis's ticks, ascending.</summary>
    public IReadOnlyList<AxisTick> YTicks { get; }

    /// <summary>The style of each series, in the order of <see cref="LinePlot.Series"/>.</summary>
    public IReadOnlyList<SeriesStyle> Styles { get; }

    /// <summary>The horizontal pixel coordinate of <paramref name="x"/> (pixel column ⌊result⌋).</summary>
    /// <param name="x">A value on the x axis.</param>
    public double MapX(double x) => PlotArea.Left + (Fraction(x, XRange, _xScale) * PlotArea.Width);

    /// <summary>The vertical pixel coordinate of <paramref name="y"/> (pixel row ⌊result⌋).</summary>
    /// <param name="y">A value on the y axis.</param>
    public double MapY(double y) => PlotArea.Bottom - (Fraction(y, YRange, _yScale) * PlotArea.Height);

    /// <summary>Where <paramref name="value"/> lies between the range's ends: 0 at its minimum, 1 at its maximum.</summary>
    internal static double Fraction(double value, AxisRange range, AxisScale scale) =>
        (Transform(value, scale) - Transform(range.Min, scale)) / (Transform(range.Max, scale) - Transform(range.Min, scale));

    /// <summary>The coordinate the axis is linear in.</summary>
    internal static double Transform(double value, AxisScale scale) => scale == AxisScale.Log10 ? Math.Log10(value) : value;

    /// <summary>The inverse of <see cref="Transform"/>.</summary>
    internal static double Untransform(double value, AxisScale scale) => scale == AxisScale.Log10 ? Math.Pow(10, value) : value;
}
