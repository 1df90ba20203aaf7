namespace OrtSparse.Cli.Plot;

/// <summary>
/// A proportional 5×7 bitmap font for printable ASCII (32 to 126) with two rows of descenders, drawn at
/// an integer scale. Glyphs are 9 pixels high (7 above the baseline) and as wide as their ink (1 to 5
/// pixels; a space is 3), with 1 pixel between characters: text is Σ width + (n − 1) pixels wide at
/// scale 1, times the scale. Characters outside printable ASCII draw as a hollow box.
/// </summary>
public static class BitmapFont
{
    /// <summary>Width of the widest glyph at scale 1.</summary>
    public const int MaxGlyphWidth = 5;

    /// <summary>Height of a glyph at scale 1, descenders included.</summary>
    public const int GlyphHeight = 9;

    /// <summary>Rows above the baseline at scale 1 (capital height).</summary>
    public const int Ascent = 7;

    /// <summary>Blank columns between characters at scale 1.</summary>
    public const int Spacing = 1;

    /// <summary>Width of a space at scale 1.</summary>
    public const int SpaceWidth = 3;

    private const char First = ' ';
    private const char Last = '~';

    /// <summary>Drawn for characters outside printable ASCII: a hollow box of capital height.</summary>
    private const ulong MissingGlyph = 0x7E318C63F;

    // One ulong per character from ' ' to '~': row r (0 = top) in bits 5r to 5r+4, the leftmost column in the highest of them.
    private static readonly ulong[] Glyphs =
    [
        0x000000000000, // space
        0x000100421084, // !
        0x00000000294A, // "
        0x000295F57D4A, // #
        0x00013C5751E4, // $
        0x0000E6820B38, // %
        0x00036554524C, // &
        0x000000001084, // '
        0x000088842082, // (
        0x000208210888, // )
        0x000009575480, // *
        0x0000084F9080, // +
        0x004118000000, // ,
        0x0000000F8000, // -
        0x000318000000, // .
        0x000020820820, // /
        0x0003A39ACE2E, // 0
        0x000388421184, // 1
        0x0007D041062E, // 2
        0x0003A211105F, // 3
        0x000085F928C2, // 4
        0x0003A210FA1F, // 5
        0x0003A31F4106, // 6
        0x00021082083F, // 7
        0x0003A317462E, // 8
        0x00030417C62E, // 9
        0x000018C03180, // :
        0x000208C03180, // ;
        0x000088882082, // <
        0x000001F07C00, // =
        0x000208208888, // >
        0x00010041062E, // ?
        0x0003AB56862E, // @
        0x000463F8C62E, // A
        0x0007A31F463E, // B
        0x0003A308422E, // C
        0x00072518C65C, // D
        0x0007E10F421F, // E
        0x0004210F421F, // F
        0x0003E31BC22E, // G
        0x0004631FC631, // H
        0x00038842108E, // I
        0x000324210847, // J
        0x0004654C5251, // K
        0x0007E1084210, // L
        0x0004631AD771, // M
        0x0004633AE631, // N
        0x0003A318C62E, // O
        0x0004210F463E, // P
        0x00036558C62E, // Q
        0x0004654F463E, // R
        0x00078217420F, // S
        0x00010842109F, // T
        0x0003A318C631, // U
        0x00011518C631, // V
        0x0002AB5AC631, // W
        0x000462A22A31, // X
        0x000108454631, // Y
        0x0007E082083F, // Z
        0x00039084210E, // [
        0x000002222200, // \
        0x00038421084E, // ]
        0x000000004544, // ^
        0x00F800000000, // _
        0x000000000888, // `
        0x0003E2F0B800, // a
        0x0007A31CDA10, // b
        0x0003A3083800, // c
        0x0003E319B421, // d
        0x0003A1F8B800, // e
        0x0002108E2126, // f
        0x0E0BE318BC00, // g
        0x0004631CDA10, // h
        0x000388423004, // i
        0x0C9084211802, // j
        0x0004A98A4A10, // k
        0x00038842108C, // l
        0x0004635AE800, // m
        0x0004631CD800, // n
        0x0003A318B800, // o
        0x1087A318F800, // p
        0x010BE318BC00, // q
        0x0004210CD800, // r
        0x000782E83C00, // s
        0x000192847108, // t
        0x00036718C400, // u
        0x00011518C400, // v
        0x0002AB58C400, // w
        0x000454454400, // x
        0x0E0BE318C400, // y
        0x0007D0417C00, // z
        0x0000C8441083, // {
        0x000108421084, // |
        0x000608411098, // }
        0x0000002AA000, // ~
    ];

    /// <summary>The first column and the width of each glyph's ink, in the order of <see cref="Glyphs"/>, then of the missing glyph.</summary>
    private static readonly (int Left, int Width)[] Ink = Glyphs.Append(MissingGlyph).Select(InkOf).ToArray();

    /// <summary>True when <paramref name="c"/> has a glyph of its own (printable ASCII).</summary>
    /// <param name="c">The character.</param>
    public static bool HasGlyph(char c) => c is >= First and <= Last;

    /// <summary>Width of <paramref name="c"/>'s glyph at scale 1: its inked columns (a space: <see cref="SpaceWidth"/>).</summary>
    /// <param name="c">The character.</param>
    public static int CharWidth(char c) => Ink[Index(c)].Width;

    /// <summary>Whether the pixel at column <paramref name="column"/>, row <paramref name="row"/> of <paramref name="c"/>'s glyph is set (scale 1).</summary>
    /// <param name="c">The character; one without a glyph gives the hollow box.</param>
    /// <param name="column">0 to <see cref="CharWidth"/> − 1, from the left.</param>
    /// <param name="row">0 to <see cref="GlyphHeight"/> − 1, from the top.</param>
    public static bool IsSet(char c, int column, int row)
    {
        var (left, width) = Ink[Index(c)];
        if ((uint)column >= width || (uint)row >= GlyphHeight)
        {
            throw new ArgumentOutOfRangeException(nameof(column), $"({column}, {row}) is outside the {width}×{GlyphHeight} glyph of '{c}'");
        }
        return IsSet(Index(c) < Glyphs.Length ? Glyphs[Index(c)] : MissingGlyph, left + column, row);
    }

    /// <summary>Width of <paramref name="text"/> in pixels at <paramref name="scale"/>: (Σ <see cref="CharWidth"/> + (n − 1) × <see cref="Spacing"/>) × scale, 0 for no text.</summary>
    /// <param name="text">The text (one line).</param>
    /// <param name="scale">Pixels per font pixel, at least 1.</param>
    public static int Width(string text, int scale)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentOutOfRangeException.ThrowIfLessThan(scale, 1);
        return text.Length == 0 ? 0 : (text.Sum(CharWidth) + ((text.Length - 1) * Spacing)) * scale;
    }

    /// <summary>Height of a line of text in pixels at <paramref name="scale"/>, descenders included.</summary>
    /// <param name="scale">Pixels per font pixel, at least 1.</param>
    public static int Height(int scale)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(scale, 1);
        return GlyphHeight * scale;
    }

    private static int Index(char c) => HasGlyph(c) ? c - First : Glyphs.Length;

    private static bool IsSet(ulong glyph, int column, int row) => ((glyph >> ((5 * row) + (MaxGlyphWidth - 1 - column))) & 1) != 0;

    private static (int Left, int Width) InkOf(ulong glyph)
    {
        var columns = Enumerable.Range(0, MaxGlyphWidth).Where(column => Enumerable.Range(0, GlyphHeight).Any(row => IsSet(glyph, column, row))).ToList();
        return columns.Count == 0 ? (0, SpaceWidth) : (columns[0], columns[^1] - columns[0] + 1);
    }
}
