using System.Globalization;

namespace OrtSparse.Cli.Plot;

/// <summary>Short tick labels.</summary>
public static class TickFormats
{
    private static readonly string[] DecimalSuffixes = ["", "k", "M", "G", "T"];
    private static readonly string[] BinarySuffixes = ["", "k", "M", "G", "T"];

    /// <summary>
    /// Up to six significant digits without float noise (0.1 + 0.2 → 0.3); from 10,000 on with a decimal
    /// suffix (100000 → 100k, 2500000 → 2.5M); below 0.0001 in exponent form (1e-5).
    /// </summary>
    /// <param name="value">A finite value.</param>
    public static string Compact(double value)
    {
        if (!double.IsFinite(value))
        {
            throw new ArgumentOutOfRangeException(nameof(value), value, "tick values must be finite");
        }
        var magnitude = Math.Abs(value);
        if (magnitude == 0)
        {
            return "0";
        }
        if (magnitude >= 1e4 && magnitude < 1e15)
        {
            var power = Math.Min((int)Math.Floor(Math.Log10(magnitude) / 3), DecimalSuffixes.Length - 1);
            return Digits(value / Math.Pow(1000, power)) + DecimalSuffixes[power];
        }
        return magnitude >= 1e-4 ? Digits(value) : value.ToString("0.#####e0", CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Whole multiples of 1024 with a binary suffix (4096 → 4k, 131072 → 128k, 524288 → 512k,
    /// 1048576 → 1M), as context lengths are written; anything else as <see cref="Compact"/>.
    /// </summary>
    /// <param name="value">A finite value.</param>
    public static string Binary(double value)
    {
        var power = 0;
        var scaled = value;
        while (power < BinarySuffixes.Length - 1 && scaled != 0 && Math.Abs(scaled) >= 1024 && scaled % 1024 == 0)
        {
            scaled /= 1024;
            power++;
        }
        return power == 0 ? Compact(value) : Digits(scaled) + BinarySuffixes[power];
    }

    private static string Digits(double value) => value.ToString("G6", CultureInfo.InvariantCulture);
}
