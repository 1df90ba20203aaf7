namespace OrtSparse.Cli.Plot;

/// <summary>A data point; NaN in either coordinate marks it missing, which breaks the line there.</summary>
/// <param name="X">The x value.</param>
/// <param name="Y">The y value.</param>
public readonly record struct PlotPoint(double X, double Y)
{
    /// <summary>True unless a coordinate is NaN.</summary>
    public bool IsPresent => !double.IsNaN(X) && !double.IsNaN(Y);
}

/// <summary>How a series is drawn.</summary>
/// <param name="Color">Line and marker colour.</param>
/// <param name="Marker">Marker shape at each point.</param>
/// <param name="Dashed">Dashed line (baselines) instead of solid.</param>
public sealed record SeriesStyle(Rgb Color, MarkerShape Marker, bool Dashed);

/// <summary>One line of a <see cref="LinePlot"/>: points joined in the order given, with a legend entry.</summary>
public sealed class PlotSeries
{
    /// <summary>A series named <paramref name="name"/> through <paramref name="points"/>.</summary>
    /// <param name="name">The legend entry; not empty.</param>
    /// <param name="points">The points, joined in this order.</param>
    public PlotSeries(string name, IEnumerable<PlotPoint> points)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(points);
        Name = name;
        Points = points.ToArray();
    }

    /// <summary>The legend entry.</summary>
    public string Name { get; }

    /// <summary>The points, in drawing order.</summary>
    public IReadOnlyList<PlotPoint> Points { get; }

    /// <summary>A reference to compare against: by default dashed, in black or grey.</summary>
    public bool IsBaseline { get; init; }

    /// <summary>Colour, marker and dashing; null for the next of <see cref="Palette"/>.</summary>
    public SeriesStyle? Style { get; init; }
}
