namespace OrtSparse.Cli.Plot;

/// <summary>Default colours and markers of plot series.</summary>
public static class Palette
{
    /// <summary>
    /// The Okabe–Ito colour-blind-safe colours (Okabe and Ito, "Color Universal Design", 2008) without
    /// black, which baselines get: blue, vermillion, bluish green, orange, reddish purple, sky blue and
    /// yellow, ordered so the first ones stand out best on white.
    /// </summary>
    public static IReadOnlyList<Rgb> Series { get; } =
        [Rgb.FromHex("#0072B2"), Rgb.FromHex("#D55E00"), Rgb.FromHex("#009E73"), Rgb.FromHex("#E69F00"),
         Rgb.FromHex("#CC79A7"), Rgb.FromHex("#56B4E9"), Rgb.FromHex("#F0E442")];

    /// <summary>Colours of baseline series: black, then greys.</summary>
    public static IReadOnlyList<Rgb> Baselines { get; } = [Rgb.Black, Rgb.FromHex("#6E6E6E"), Rgb.FromHex("#A0A0A0")];

    /// <summary>Marker shapes in the order series get them.</summary>
    public static IReadOnlyList<MarkerShape> Markers { get; } = Enum.GetValues<MarkerShape>();
}
