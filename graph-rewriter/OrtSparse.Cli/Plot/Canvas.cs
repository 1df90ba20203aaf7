namespace OrtSparse.Cli.Plot;

/// <summary>Shapes of data-point markers; each series gets its own, so lines stay apart in grayscale too.</summary>
public enum MarkerShape
{
    /// <summary>A filled disc.</summary>
    Circle,

    /// <summary>A filled square.</summary>
    Square,

    /// <summary>A filled triangle pointing up.</summary>
    TriangleUp,

    /// <summary>A filled square standing on a corner.</summary>
    Diamond,

    /// <summary>A filled triangle pointing down.</summary>
    TriangleDown,

    /// <summary>A thick upright cross (+).</summary>
    Plus,

    /// <summary>A thick diagonal cross (×).</summary>
    Cross,
}

/// <summary>Dashes of a line: <paramref name="On"/> pixels drawn, then <paramref name="Off"/> pixels left out, along the line.</summary>
/// <param name="On">Length of a dash in pixels, positive.</param>
/// <param name="Off">Length of a gap in pixels, positive.</param>
public readonly record struct Dash(double On, double Off);

/// <summary>
/// An RGB image to draw a plot on: anti-aliased thick lines (solid or dashed), filled rectangles,
/// markers and bitmap text. Coordinates are in pixels from the top-left corner; pixel (x, y) covers
/// [x, x + 1) × [y, y + 1), so its centre is (x + 0.5, y + 0.5). Drawing outside the image is clipped.
/// </summary>
public sealed class Canvas
{
    /// <summary>Sub-samples per pixel side when covering markers.</summary>
    private const int MarkerSamples = 4;

    private readonly byte[] _pixels;

    /// <summary>A canvas filled with <paramref name="background"/>.</summary>
    /// <param name="width">Width in pixels, 1 to 16384.</param>
    /// <param name="height">Height in pixels, 1 to 16384.</param>
    /// <param name="background">The colour of every pixel to begin with.</param>
    public Canvas(int width, int height, Rgb background)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(width, 16384);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(height, 16384);
        Width = width;
        Height = height;
        _pixels = new byte[width * height * 3];
        FillRectangle(0, 0, width, height, background);
    }

    /// <summary>Width in pixels.</summary>
    public int Width { get; }

    /// <summary>Height in pixels.</summary>
    public int Height { get; }

    /// <summary>The pixels: rows top to bottom, 3 bytes (red, green, blue) per pixel.</summary>
    public ReadOnlySpan<byte> Pixels => _pixels;

    /// <summary>The colour of pixel (<paramref name="x"/>, <paramref name="y"/>).</summary>
    /// <param name="x">Column, 0 to <see cref="Width"/> − 1.</param>
    /// <param name="y">Row, 0 to <see cref="Height"/> − 1.</param>
    public Rgb GetPixel(int x, int y)
    {
        if (!Contains(x, y))
        {
            throw new ArgumentOutOfRangeException(nameof(x), $"({x}, {y}) is outside the {Width}×{Height} canvas");
        }
        var i = ((y * Width) + x) * 3;
        return new Rgb(_pixels[i], _pixels[i + 1], _pixels[i + 2]);
    }

    /// <summary>Mixes <paramref name="color"/> into pixel (<paramref name="x"/>, <paramref name="y"/>) by <paramref name="coverage"/> (1 replaces it); outside the canvas does nothing.</summary>
    /// <param name="x">Column.</param>
    /// <param name="y">Row.</param>
    /// <param name="color">The colour drawn.</param>
    /// <param name="coverage">The part of the pixel covered, in [0, 1].</param>
    public void Blend(int x, int y, Rgb color, double coverage)
    {
        if (!Contains(x, y) || !(coverage > 0))
        {
            return;
        }
        var i = ((y * Width) + x) * 3;
        var mixed = new Rgb(_pixels[i], _pixels[i + 1], _pixels[i + 2]).Mix(color, coverage);
        (_pixels[i], _pixels[i + 1], _pixels[i + 2]) = (mixed.R, mixed.G, mixed.B);
    }

    /// <summary>Paints the pixels of [left, left + width) × [top, top + height).</summary>
    /// <param name="left">First column.</param>
    /// <param name="top">First row.</param>
    /// <param name="width">Columns.</param>
    /// <param name="height">Rows.</param>
    /// <param name="color">The colour.</param>
    public void FillRectangle(int left, int top, int width, int height, Rgb color)
    {
        for (var y = Math.Max(top, 0); y < Math.Min(top + height, Height); y++)
        {
            for (var x = Math.Max(left, 0); x < Math.Min(left + width, Width); x++)
            {
                Blend(x, y, color, 1);
            }
        }
    }

    /// <summary>A one-pixel outline along the inside of [left, left + width) × [top, top + height).</summary>
    /// <param name="left">First column.</param>
    /// <param name="top">First row.</param>
    /// <param name="width">Columns.</param>
    /// <param name="height">Rows.</param>
    /// <param name="color">The colour.</param>
    public void DrawRectangle(int left, int top, int width, int height, Rgb color)
    {
        FillRectangle(left, top, width, 1, color);
        FillRectangle(left, top + height - 1, width, 1, color);
        FillRectangle(left, top, 1, height, color);
        FillRectangle(left + width - 1, top, 1, height, color);
    }

    /// <summary>
    /// An anti-aliased line through <paramref name="points"/> with round joins and ends; with
    /// <paramref name="dash"/>, dashes run on across the joins. Each pixel is painted once, with the
    /// largest coverage any segment gives it, so joins are not darker than the line.
    /// </summary>
    /// <param name="points">Two or more points (one draws a dot).</param>
    /// <param name="color">The colour.</param>
    /// <param name="width">Line width in pixels, positive.</param>
    /// <param name="dash">Dashes, or null for a solid line.</param>
    public void DrawPolyline(IReadOnlyList<(double X, double Y)> points, Rgb color, double width, Dash? dash = null)
    {
        ArgumentNullException.ThrowIfNull(points);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(width, 0);
        if (dash is { } d && !(d.On > 0 && d.Off > 0))
        {
            throw new ArgumentOutOfRangeException(nameof(dash), dash, "dash and gap lengths must be positive");
        }
        if (points.Count == 0)
        {
            return;
        }
        if (points.Any(p => !double.IsFinite(p.X) || !double.IsFinite(p.Y)))
        {
            throw new ArgumentException("every point of a line must be finite", nameof(points));
        }
        var reach = (width / 2) + 1;
        var left = Math.Max((int)Math.Floor(points.Min(p => p.X) - reach), 0);
        var top = Math.Max((int)Math.Floor(points.Min(p => p.Y) - reach), 0);
        var right = Math.Min((int)Math.Ceiling(points.Max(p => p.X) + reach), Width);
        var bottom = Math.Min((int)Math.Ceiling(points.Max(p => p.Y) + reach), Height);
        if (left >= right || top >= bottom)
        {
            return;
        }
        var coverage = new double[(right - left) * (bottom - top)];
        var travelled = 0.0;
        for (var i = 0; i < Math.Max(points.Count - 1, 1); i++)
        {
            var (start, end) = (points[i], points[Math.Min(i + 1, points.Count - 1)]);
            CoverSegment(coverage, left, top, right, bottom, start, end, width / 2, dash, travelled);
            travelled += Math.Sqrt(Square(end.X - start.X) + Square(end.Y - start.Y));
        }
        for (var y = top; y < bottom; y++)
        {
            for (var x = left; x < right; x++)
            {
                Blend(x, y, color, coverage[((y - top) * (right - left)) + (x - left)]);
            }
        }
    }

    /// <summary>Raises <paramref name="coverage"/> (the box [left, right) × [top, bottom)) to what one segment covers.</summary>
    private static void CoverSegment(double[] coverage, int left, int top, int right, int bottom,
                                     (double X, double Y) start, (double X, double Y) end, double halfWidth, Dash? dash, double travelled)
    {
        var (dx, dy) = (end.X - start.X, end.Y - start.Y);
        var lengthSquared = (dx * dx) + (dy * dy);
        var length = Math.Sqrt(lengthSquared);
        var reach = halfWidth + 1;
        for (var y = Math.Max(top, (int)Math.Floor(Math.Min(start.Y, end.Y) - reach)); y < Math.Min(bottom, Math.Ceiling(Math.Max(start.Y, end.Y) + reach)); y++)
        {
            for (var x = Math.Max(left, (int)Math.Floor(Math.Min(start.X, end.X) - reach)); x < Math.Min(right, Math.Ceiling(Math.Max(start.X, end.X) + reach)); x++)
            {
                var (cx, cy) = (x + 0.5, y + 0.5);
                var t = lengthSquared > 0 ? Math.Clamp((((cx - start.X) * dx) + ((cy - start.Y) * dy)) / lengthSquared, 0, 1) : 0;
                var distance = Math.Sqrt(Square(cx - (start.X + (t * dx))) + Square(cy - (start.Y + (t * dy))));
                var covered = Math.Clamp(halfWidth + 0.5 - distance, 0, 1);
                if (dash is { } d)
                {
                    covered *= DashCoverage(travelled + (t * length), d);
                }
                ref var cell = ref coverage[((y - top) * (right - left)) + (x - left)];
                cell = Math.Max(cell, covered);
            }
        }
    }

    /// <summary>How much of a pixel at arc length <paramref name="along"/> lies in a dash: 1 inside, 0 in a gap, a ramp of one pixel at the ends.</summary>
    private static double DashCoverage(double along, Dash dash)
    {
        var period = dash.On + dash.Off;
        var phase = along - (Math.Floor(along / period) * period);
        return phase < dash.On
            ? Math.Clamp(Math.Min(phase, dash.On - phase) + 0.5, 0, 1)
            : Math.Clamp(0.5 - Math.Min(phase - dash.On, period - phase), 0, 1);
    }

    /// <summary>A filled, anti-aliased marker centred on (<paramref name="x"/>, <paramref name="y"/>).</summary>
    /// <param name="shape">The shape.</param>
    /// <param name="x">Centre, horizontally.</param>
    /// <param name="y">Centre, vertically.</param>
    /// <param name="radius">Half the marker's size in pixels (a circle's radius), positive.</param>
    /// <param name="color">The colour.</param>
    public void DrawMarker(MarkerShape shape, double x, double y, double radius, Rgb color)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(radius, 0);
        if (!double.IsFinite(x) || !double.IsFinite(y))
        {
            throw new ArgumentException($"a marker needs a finite centre, got ({x}, {y})");
        }
        var reach = (radius * 1.5) + 1;
        for (var py = (int)Math.Floor(y - reach); py <= (int)Math.Ceiling(y + reach); py++)
        {
            for (var px = (int)Math.Floor(x - reach); px <= (int)Math.Ceiling(x + reach); px++)
            {
                var inside = 0;
                for (var sy = 0; sy < MarkerSamples; sy++)
                {
                    for (var sx = 0; sx < MarkerSamples; sx++)
                    {
                        var u = (px + ((sx + 0.5) / MarkerSamples) - x) / radius;
                        var v = (py + ((sy + 0.5) / MarkerSamples) - y) / radius;
                        inside += Inside(shape, u, v) ? 1 : 0;
                    }
                }
                Blend(px, py, color, inside / (double)(MarkerSamples * MarkerSamples));
            }
        }
    }

    /// <summary>Whether (u, v), in units of the radius from the centre (v down), lies in <paramref name="shape"/>; the shapes have about the area of the unit disc.</summary>
    private static bool Inside(MarkerShape shape, double u, double v)
    {
        const double bar = 0.36;
        const double arm = 1.15;
        return shape switch
        {
            MarkerShape.Circle => (u * u) + (v * v) <= 1,
            MarkerShape.Square => Math.Abs(u) <= 0.88 && Math.Abs(v) <= 0.88,
            MarkerShape.Diamond => Math.Abs(u) + Math.Abs(v) <= 1.25,
            MarkerShape.TriangleUp => InTriangle(u, v),
            MarkerShape.TriangleDown => InTriangle(u, -v),
            MarkerShape.Plus => (Math.Abs(u) <= bar && Math.Abs(v) <= arm) || (Math.Abs(v) <= bar && Math.Abs(u) <= arm),
            MarkerShape.Cross => Inside(MarkerShape.Plus, (u + v) / Math.Sqrt(2), (u - v) / Math.Sqrt(2)),
            _ => throw new ArgumentOutOfRangeException(nameof(shape), shape, "unknown marker shape"),
        };
    }

    /// <summary>An upward triangle with its apex at v = −1.35 and its base at v = 0.8, centred on its centroid.</summary>
    private static bool InTriangle(double u, double v) => v <= 0.8 && Math.Abs(u) <= (v + 1.35) * 0.72;

    /// <summary>Draws <paramref name="text"/> in <see cref="BitmapFont"/>; (<paramref name="left"/>, <paramref name="top"/>) is the top-left of the first glyph.</summary>
    /// <param name="text">One line of text.</param>
    /// <param name="left">Left edge.</param>
    /// <param name="top">Top edge (capital height starts here).</param>
    /// <param name="scale">Pixels per font pixel, at least 1.</param>
    /// <param name="color">The colour.</param>
    public void DrawText(string text, int left, int top, int scale, Rgb color) =>
        DrawGlyphs(text, scale, color, (across, down) => (left + across, top + down));

    /// <summary>
    /// Draws <paramref name="text"/> turned a quarter turn anticlockwise, reading upwards, as a y-axis
    /// label does; (<paramref name="left"/>, <paramref name="top"/>) is the top-left of the turned text,
    /// which is <see cref="BitmapFont.Height"/> wide and <see cref="BitmapFont.Width"/> high.
    /// </summary>
    /// <param name="text">One line of text.</param>
    /// <param name="left">Left edge (the top of the glyphs).</param>
    /// <param name="top">Top edge (where the text ends).</param>
    /// <param name="scale">Pixels per font pixel, at least 1.</param>
    /// <param name="color">The colour.</param>
    public void DrawTextVertical(string text, int left, int top, int scale, Rgb color)
    {
        var length = BitmapFont.Width(text, scale);
        DrawGlyphs(text, scale, color, (across, down) => (left + down, top + length - scale - across));
    }

    /// <summary>Paints each set font pixel as a scale × scale square at <paramref name="place"/>(its upright offset across, down).</summary>
    private void DrawGlyphs(string text, int scale, Rgb color, Func<int, int, (int X, int Y)> place)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentOutOfRangeException.ThrowIfLessThan(scale, 1);
        var start = 0;
        foreach (var c in text)
        {
            for (var row = 0; row < BitmapFont.GlyphHeight; row++)
            {
                for (var column = 0; column < BitmapFont.CharWidth(c); column++)
                {
                    if (BitmapFont.IsSet(c, column, row))
                    {
                        var (x, y) = place((start + column) * scale, row * scale);
                        FillRectangle(x, y, scale, scale, color);
                    }
                }
            }
            start += BitmapFont.CharWidth(c) + BitmapFont.Spacing;
        }
    }

    /// <summary>The image as a PNG file.</summary>
    public byte[] ToPng() => PngEncoder.Encode(_pixels, Width, Height, PngPixelFormat.Rgb);

    private bool Contains(int x, int y) => (uint)x < (uint)Width && (uint)y < (uint)Height;

    private static double Square(double value) => value * value;
}
