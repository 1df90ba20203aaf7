using OrtSparse.Cli.Plot;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>The plot's bitmap font: a glyph per printable ASCII character, widths as documented, turned text.</summary>
public sealed class PlotFontTests
{
    private static bool[,] Glyph(char c)
    {
        var bits = new bool[BitmapFont.CharWidth(c), BitmapFont.GlyphHeight];
        for (var column = 0; column < bits.GetLength(0); column++)
        {
            for (var row = 0; row < BitmapFont.GlyphHeight; row++)
            {
                bits[column, row] = BitmapFont.IsSet(c, column, row);
            }
        }
        return bits;
    }

    private static string Key(bool[,] bits) =>
        $"{bits.GetLength(0)}:" + string.Concat(bits.Cast<bool>().Select(b => b ? '#' : '.'));

    [Fact]
    public void EveryPrintableCharacterHasItsOwnGlyph()
    {
        var printable = Enumerable.Range(33, 94).Select(i => (char)i).ToList();
        foreach (var c in printable)
        {
            Assert.True(BitmapFont.HasGlyph(c), $"'{c}'");
            var bits = Glyph(c);
            Assert.True(bits.Cast<bool>().Any(b => b), $"'{c}' has an empty glyph");
            Assert.InRange(bits.GetLength(0), 1, BitmapFont.MaxGlyphWidth);
            // Ink is trimmed: the first and last columns are used.
            Assert.True(Enumerable.Range(0, BitmapFont.GlyphHeight).Any(r => bits[0, r]) && Enumerable.Range(0, BitmapFont.GlyphHeight).Any(r => bits[bits.GetLength(0) - 1, r]), $"'{c}'");
        }
        Assert.Equal(printable.Count, printable.Select(c => Key(Glyph(c))).Distinct().Count());
        Assert.DoesNotContain(true, Glyph(' ').Cast<bool>());
        Assert.False(BitmapFont.HasGlyph('é'));
        Assert.Equal(Key(Glyph('\u00b5')), Key(Glyph('\u00d7'))); // both the missing-glyph box
        Assert.DoesNotContain(Key(Glyph('\u00b5')), printable.Select(c => Key(Glyph(c))));
    }

    [Theory]
    [InlineData("", 1, 0)]
    [InlineData("i", 1, 3)]
    [InlineData("W", 1, 5)]
    [InlineData("ii", 2, 14)]
    [InlineData("a b", 1, 15)]
    [InlineData("0.05", 3, 60)]
    [InlineData("128k", 2, 40)]
    public void TextWidthIsTheGlyphWidthsPlusOnePixelBetween(string text, int scale, int width)
    {
        Assert.Equal(width, BitmapFont.Width(text, scale));
        Assert.Equal(9 * scale, BitmapFont.Height(scale));
    }

    [Theory]
    [InlineData("Hello, plot!", 1)]
    [InlineData("ms per step (p50)", 2)]
    public void DrawnTextInksExactlyItsMeasuredBox(string text, int scale)
    {
        var canvas = new Canvas(400, 60, Rgb.White);
        canvas.DrawText(text, 7, 5, scale, Rgb.Black);

        var inked = Ink(canvas);
        Assert.Equal(7, inked.Min(p => p.X));
        Assert.Equal(7 + BitmapFont.Width(text, scale) - 1, inked.Max(p => p.X));
        Assert.Equal(5, inked.Min(p => p.Y));
        Assert.Equal(5 + BitmapFont.Height(scale) - 1, inked.Max(p => p.Y)); // p, ( and ) reach the bottom descender row
    }

    [Fact]
    public void VerticalTextIsTheHorizontalTextTurnedAQuarterAnticlockwise()
    {
        const string text = "ms/step";
        var (length, thickness) = (BitmapFont.Width(text, 2), BitmapFont.Height(2));
        var upright = new Canvas(length, thickness, Rgb.White);
        upright.DrawText(text, 0, 0, 2, Rgb.Black);
        var turned = new Canvas(thickness + 10, length + 10, Rgb.White);
        turned.DrawTextVertical(text, 4, 6, 2, Rgb.Black);

        var expected = Ink(upright).Select(p => (X: 4 + p.Y, Y: 6 + length - 1 - p.X)).Order().ToList();
        Assert.Equal(expected, Ink(turned).Order().ToList());
    }

    private static List<(int X, int Y)> Ink(Canvas canvas) =>
        (from y in Enumerable.Range(0, canvas.Height)
         from x in Enumerable.Range(0, canvas.Width)
         where canvas.GetPixel(x, y) != Rgb.White
         select (x, y)).ToList();
}
