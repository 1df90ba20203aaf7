using OrtSparse.Cli.Plot;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>The PNG encoder, read back by the test's own decoder.</summary>
public sealed class PlotPngTests
{
    [Fact]
    public void TheDecodersCrcGivesTheStandardCheckValue()
    {
        Assert.Equal(0xCBF43926u, PlotPngDecoder.BitwiseCrc32("123456789"u8));
    }

    [Theory]
    [InlineData(PngPixelFormat.Rgb, 1, 1, "random", PngRowFilter.Adaptive)]
    [InlineData(PngPixelFormat.Rgb, 37, 23, "random", PngRowFilter.None)]
    [InlineData(PngPixelFormat.Rgb, 37, 23, "random", PngRowFilter.Sub)]
    [InlineData(PngPixelFormat.Rgb, 37, 23, "random", PngRowFilter.Up)]
    [InlineData(PngPixelFormat.Rgb, 37, 23, "random", PngRowFilter.Average)]
    [InlineData(PngPixelFormat.Rgb, 37, 23, "random", PngRowFilter.Paeth)]
    [InlineData(PngPixelFormat.Rgba, 13, 7, "random", PngRowFilter.Paeth)]
    [InlineData(PngPixelFormat.Rgb, 64, 40, "gradient", PngRowFilter.Adaptive)]
    [InlineData(PngPixelFormat.Rgba, 50, 30, "stripes", PngRowFilter.Adaptive)]
    public void EncodedImagesDecodeToTheSamePixels(PngPixelFormat format, int width, int height, string content, PngRowFilter filter)
    {
        var channels = format == PngPixelFormat.Rgb ? 3 : 4;
        var pixels = new byte[width * height * channels];
        var random = new Random(width * 1000 + height);
        for (var i = 0; i < pixels.Length; i++)
        {
            var (x, y) = (i / channels % width, i / channels / width);
            pixels[i] = content switch
            {
                "random" => (byte)random.Next(256),
                "gradient" => (byte)((x * 4) + (y * 3) + (i % channels * 50)),
                _ => (byte)(y % 3 == 0 ? 255 : x % 5 == 0 ? 40 : 200),
            };
        }

        var png = PlotPngDecoder.Decode(PngEncoder.Encode(pixels, width, height, format, filter));

        Assert.Equal((width, height, channels), (png.Width, png.Height, png.Channels));
        Assert.Equal(["IHDR", "IDAT", "IEND"], png.Chunks);
        Assert.Equal(pixels, png.Pixels);
        if (filter != PngRowFilter.Adaptive)
        {
            Assert.Equal([(int)filter], png.RowFilters);
        }
    }

    [Fact]
    public void EncoderRejectsAPixelBufferOfTheWrongSize()
    {
        var error = Assert.Throws<ArgumentException>(() => PngEncoder.Encode(new byte[10], 2, 2, PngPixelFormat.Rgb));
        Assert.Contains("a 2×2 Rgb image has 12 bytes of pixels, got 10", error.Message);
    }
}
