namespace OrtSparse.Cli.Plot;

/// <summary>How an axis maps values to positions.</summary>
public enum AxisScale
{
    /// <summary>Position proportional to the value.</summary>
    Linear,

    /// <summary>Position proportional to log10 of the value; every value must be positive.</summary>
    Log10,
}

/// <summary>Where a logarithmic axis puts its ticks (a linear axis always uses 1, 2 or 5 × 10^k steps).</summary>
public enum TickSpacing
{
    /// <summary>Powers of two when every value on the axis is a power of two (context lengths, batch sizes), otherwise <see cref="Decimal"/>.</summary>
    Auto,

    /// <summary>Powers of ten, with 2 and 5 times them labelled where there is room.</summary>
    Decimal,

    /// <summary>Powers of two, labelled with binary suffixes (4k, 128k).</summary>
    PowersOfTwo,
}

/// <summary>One axis of a <see cref="LinePlot"/>.</summary>
public sealed class PlotAxis
{
    /// <summary>The axis title; empty for none.</summary>
    public string Label { get; set; } = "";

    /// <summary>Linear or logarithmic.</summary>
    public AxisScale Scale { get; set; } = AxisScale.Linear;

    /// <summary>Where a logarithmic axis puts its ticks.</summary>
    public TickSpacing Ticks { get; set; } = TickSpacing.Auto;

    /// <summary>Turns a tick value into its label; null for <see cref="TickFormats.Binary"/> on power-of-two ticks and <see cref="TickFormats.Compact"/> otherwise.</summary>
    public Func<double, string>? TickFormatter { get; set; }
}

/// <summary>A tick of an axis: a grid line at <paramref name="Value"/>, labelled unless <paramref name="Label"/> is null (a minor grid line).</summary>
/// <param name="Value">Where, in data units.</param>
/// <param name="Label">The label, or null.</param>
public readonly record struct AxisTick(double Value, string? Label);

/// <summary>The data range an axis shows.</summary>
/// <param name="Min">The value at the left or bottom edge of the plot area.</param>
/// <param name="Max">The value at the right or top edge.</param>
public readonly record struct AxisRange(double Min, double Max);
