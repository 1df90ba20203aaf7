using System.Globalization;

namespace OrtSparse.Cli.Plot;

/// <summary>An opaque 8-bit sRGB colour.</summary>
/// <param name="R">Red.</param>
/// <param name="G">Green.</param>
/// <param name="B">Blue.</param>
public readonly record struct Rgb(byte R, byte G, byte B)
{
    /// <summary>White, the background of plots.</summary>
    public static Rgb White { get; } = new(255, 255, 255);

    /// <summary>Black.</summary>
    public static Rgb Black { get; } = new(0, 0, 0);

    /// <summary>The colour of <c>#RRGGBB</c>.</summary>
    /// <param name="hex">Six hexadecimal digits, with or without a leading '#'.</param>
    public static Rgb FromHex(string hex)
    {
        ArgumentNullException.ThrowIfNull(hex);
        var digits = hex.StartsWith('#') ? hex[1..] : hex;
        if (digits.Length != 6 || !int.TryParse(digits, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var value))
        {
            throw new ArgumentException($"'{hex}' is not a colour of the form #RRGGBB", nameof(hex));
        }
        return new Rgb((byte)(value >> 16), (byte)(value >> 8), (byte)value);
    }

    /// <summary>This colour mixed with <paramref name="other"/>: 0 gives this colour, 1 gives <paramref name="other"/>.</summary>
    /// <param name="other">The colour mixed in.</param>
    /// <param name="amount">How much of <paramref name="other"/>, in [0, 1].</param>
    public Rgb Mix(Rgb other, double amount)
    {
        var t = Math.Clamp(amount, 0, 1);
        static byte Lerp(byte a, byte b, double t) => (byte)Math.Round(a + ((b - a) * t));
        return new Rgb(Lerp(R, other.R, t), Lerp(G, other.G, t), Lerp(B, other.B, t));
    }

    /// <inheritdoc/>
    public override string ToString() => $"#{R:X2}{G:X2}{B:X2}";
}
