using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace OrtSparse.Cli.Plot;

/// <summary>The pixel layouts <see cref="PngEncoder"/> writes: 8 bits per channel, rows top to bottom, no padding.</summary>
public enum PngPixelFormat
{
    /// <summary>Red, green, blue: 3 bytes per pixel (PNG colour type 2).</summary>
    Rgb = 2,

    /// <summary>Red, green, blue, alpha (not premultiplied): 4 bytes per pixel (PNG colour type 6).</summary>
    Rgba = 6,
}

/// <summary>The row filters of PNG (filter method 0), by their type byte, and the adaptive choice among them.</summary>
public enum PngRowFilter
{
    /// <summary>Each row gets the filter whose output has the smallest sum of absolute values (as signed bytes).</summary>
    Adaptive = -1,

    /// <summary>Bytes as they are.</summary>
    None = 0,

    /// <summary>Difference from the byte one pixel to the left.</summary>
    Sub = 1,

    /// <summary>Difference from the byte above.</summary>
    Up = 2,

    /// <summary>Difference from the mean of left and above.</summary>
    Average = 3,

    /// <summary>Difference from whichever of left, above and upper-left is closest to left + above − upper-left.</summary>
    Paeth = 4,
}

/// <summary>
/// Encodes 8-bit RGB or RGBA images as PNG (ISO/IEC 15948): the signature, IHDR, one IDAT of zlib data and IEND.
/// By default each row gets the filter (None, Sub, Up, Average or Paeth) whose output has the smallest
/// sum of absolute values, the usual heuristic that makes flat areas and gradients compress well.
/// </summary>
public static class PngEncoder
{
    private static readonly byte[] Signature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>Bytes per pixel of <paramref name="format"/>.</summary>
    /// <param name="format">The pixel layout.</param>
    public static int BytesPerPixel(PngPixelFormat format) => format switch
    {
        PngPixelFormat.Rgb => 3,
        PngPixelFormat.Rgba => 4,
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, "not a PNG pixel format this encoder writes"),
    };

    /// <summary>The PNG file of an image.</summary>
    /// <param name="pixels">width × height pixels, rows top to bottom, channels in the order <paramref name="format"/> names.</param>
    /// <param name="width">Width in pixels, at least 1.</param>
    /// <param name="height">Height in pixels, at least 1.</param>
    /// <param name="format">The pixel layout.</param>
    /// <param name="filter">The row filter: chosen per row by default, or one for every row.</param>
    public static byte[] Encode(ReadOnlySpan<byte> pixels, int width, int height, PngPixelFormat format, PngRowFilter filter = PngRowFilter.Adaptive)
    {
        if (!Enum.IsDefined(filter))
        {
            throw new ArgumentOutOfRangeException(nameof(filter), filter, "not a PNG row filter");
        }
        var bytesPerPixel = BytesPerPixel(format);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        var stride = (long)width * bytesPerPixel;
        if (stride + 1 > int.MaxValue || stride * height != pixels.Length)
        {
            throw new ArgumentException(
                $"a {width}×{height} {format} image has {stride * height} bytes of pixels, got {pixels.Length}", nameof(pixels));
        }

        using var file = new MemoryStream();
        file.Write(Signature);
        var header = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, width);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), height);
        header[8] = 8; // bits per channel
        header[9] = (byte)format;
        // header[10..12]: deflate compression, adaptive filtering, no interlacing: all method 0.
        WriteChunk(file, "IHDR", header);
        WriteChunk(file, "IDAT", Compress(pixels, (int)stride, height, bytesPerPixel, filter));
        WriteChunk(file, "IEND", []);
        return file.ToArray();
    }

    private static byte[] Compress(ReadOnlySpan<byte> pixels, int stride, int height, int bytesPerPixel, PngRowFilter only)
    {
        using var compressed = new MemoryStream();
        using (var zlib = new ZLibStream(compressed, CompressionLevel.SmallestSize, leaveOpen: true))
        {
            var previous = new byte[stride]; // the row above the first row counts as zeros
            var candidates = new byte[5][];
            for (var filter = 0; filter < candidates.Length; filter++)
            {
                candidates[filter] = new byte[stride + 1];
                candidates[filter][0] = (byte)filter;
            }
            for (var y = 0; y < height; y++)
            {
                var row = pixels.Slice(y * stride, stride);
                var best = 0;
                var bestCost = long.MaxValue;
                for (var filter = 0; filter < candidates.Length; filter++)
                {
                    if (only != PngRowFilter.Adaptive && filter != (int)only)
                    {
                        continue;
                    }
                    var cost = Filter(filter, row, previous, bytesPerPixel, candidates[filter].AsSpan(1));
                    if (cost < bestCost)
                    {
                        (best, bestCost) = (filter, cost);
                    }
                }
                zlib.Write(candidates[best]);
                row.CopyTo(previous);
            }
        }
        return compressed.ToArray();
    }

    /// <summary>Writes the filtered row into <paramref name="output"/>; returns the sum of its bytes read as signed values.</summary>
    private static long Filter(int filter, ReadOnlySpan<byte> row, ReadOnlySpan<byte> above, int bytesPerPixel, Span<byte> output)
    {
        long cost = 0;
        for (var i = 0; i < row.Length; i++)
        {
            int left = i >= bytesPerPixel ? row[i - bytesPerPixel] : 0;
            int up = above[i];
            int upLeft = i >= bytesPerPixel ? above[i - bytesPerPixel] : 0;
            var predicted = filter switch
            {
                0 => 0,
                1 => left,
                2 => up,
                3 => (left + up) / 2,
                _ => Paeth(left, up, upLeft),
            };
            var value = (byte)(row[i] - predicted);
            output[i] = value;
            cost += Math.Abs((int)(sbyte)value);
        }
        return cost;
    }

    /// <summary>The neighbour (left, up or up-left) closest to left + up − upLeft, ties in that order.</summary>
    private static int Paeth(int left, int up, int upLeft)
    {
        var estimate = left + up - upLeft;
        var toLeft = Math.Abs(estimate - left);
        var toUp = Math.Abs(estimate - up);
        var toUpLeft = Math.Abs(estimate - upLeft);
        return toLeft <= toUp && toLeft <= toUpLeft ? left : toUp <= toUpLeft ? up : upLeft;
    }

    private static void WriteChunk(Stream file, string type, ReadOnlySpan<byte> data)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, data.Length);
        file.Write(word);
        var typeBytes = Encoding.ASCII.GetBytes(type);
        file.Write(typeBytes);
        file.Write(data);
        BinaryPrimitives.WriteUInt32BigEndian(word, Crc32.Append(Crc32.Append(0, typeBytes), data));
        file.Write(word);
    }
}
