using OrtSparse.Cli;
using OrtSparse.Cli.Plot;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>ortsparse plot: CSV in, PNG out, and the errors it reports.</summary>
public sealed class PlotCommandTests : IDisposable
{
    private const string Latency = """
        device,batch,context,method,ms
        H100,1,32768,sdpa,0.055
        H100,1,131072,sdpa,0.187
        H100,1,524288,sdpa,0.710
        H100,8,32768,sdpa,0.361
        H100,1,32768,quest,0.067
        H100,1,131072,quest,0.090
        H100,1,524288,quest,0.195
        H100,1,32768,"dense",0.063
        H100,1,524288,dense,0.763
        H100,1,131072,dense,
        """;

    private readonly string _scratch = Directory.CreateTempSubdirectory("ortsparse-plot-").FullName;

    public PlotCommandTests()
    {
        File.WriteAllText(Path.Combine(_scratch, "latency.csv"), Latency);
        File.WriteAllText(Path.Combine(_scratch, "words.csv"), "context,method,ms\n32768,quest,0.067\n131072,quest,fast\n");
        File.WriteAllText(Path.Combine(_scratch, "zero.csv"), "context,method,ms\n32768,quest,0.067\n131072,quest,0\n");
    }

    public void Dispose() => Directory.Delete(_scratch, recursive: true);

    private (int Code, string Out, string Err) Plot(params string[] args) =>
        CliTests.Cli(["plot", .. args.Select(a => a.Replace("{dir}", _scratch, StringComparison.Ordinal))]);

    [Fact]
    public void PlotsOneLinePerSeriesOfTheRowsThatMatch()
    {
        var input = Path.Combine(_scratch, "latency.csv");
        var output = Path.Combine(_scratch, "plots", "latency.png");

        var result = Plot(input, "-o", output, "--x", "context", "--y", "ms", "--series", "method", "--where", "batch=1.0",
                          "--log-x", "--log-y", "--baseline", "sdpa", "--title", "Decode latency", "--width", "640", "--height", "400");

        Assert.True(result.Code == 0, result.Err);
        Assert.Equal($"plotted 3 series, 8 points -> {output}", result.Out.Trim());
        Assert.Equal(Latency, File.ReadAllText(input));
        Assert.Equal(["latency.png"], Directory.GetFiles(Path.GetDirectoryName(output)!).Select(Path.GetFileName));
        var png = PlotPngDecoder.Decode(File.ReadAllBytes(output));
        Assert.Equal((640, 400), (png.Width, png.Height));
        var colours = Enumerable.Range(0, png.Width * png.Height).Select(i => png.Pixel(i % png.Width, i / png.Width)).ToHashSet();
        Assert.Contains((Palette.Series[0].R, Palette.Series[0].G, Palette.Series[0].B), colours); // quest
        Assert.Contains((Palette.Series[1].R, Palette.Series[1].G, Palette.Series[1].B), colours); // dense
        Assert.DoesNotContain((Palette.Series[2].R, Palette.Series[2].G, Palette.Series[2].B), colours); // no third method
        Assert.Contains(((byte)0, (byte)0, (byte)0), colours); // the sdpa baseline

        Assert.Contains("plot DATA.csv -o OUT.png", CliTests.Cli("--help").Out);
        Assert.Contains("--where COLUMN=VALUE", Plot("--help").Out);
    }

    [Theory]
    [InlineData(CliApp.Failed, "{dir}/missing.csv: no such file", "{dir}/missing.csv", "--x", "context", "--y", "ms")]
    [InlineData(CliApp.Usage, "--x: {dir}/latency.csv has no column 'contxt' (columns: device, batch, context, method, ms)", "{dir}/latency.csv", "--x", "contxt", "--y", "ms")]
    [InlineData(CliApp.Usage, "--where: {dir}/latency.csv has no column 'bs'", "{dir}/latency.csv", "--x", "context", "--y", "ms", "--where", "bs=1")]
    [InlineData(CliApp.Failed, "{dir}/words.csv line 3, column 'ms': 'fast' is not a number", "{dir}/words.csv", "--x", "context", "--y", "ms")]
    [InlineData(CliApp.Failed, "no row of {dir}/latency.csv matches batch=4; batch has 1, 8", "{dir}/latency.csv", "--x", "context", "--y", "ms", "--where", "batch=4")]
    [InlineData(CliApp.Usage, "-o {dir}/latency.csv would overwrite the input data {dir}/latency.csv", "{dir}/latency.csv", "--x", "context", "--y", "ms", "-o", "{dir}/latency.csv")]
    [InlineData(CliApp.Usage, "--baseline sdpb: no such series (series: sdpa, quest, dense)", "{dir}/latency.csv", "--x", "context", "--y", "ms", "--series", "method", "--baseline", "sdpb")]
    [InlineData(CliApp.Usage, "--where expects COLUMN=VALUE, got 'batch'", "{dir}/latency.csv", "--x", "context", "--y", "ms", "--where", "batch")]
    [InlineData(CliApp.Failed, "series 'sdpa' has two rows with context = 32768 (lines 2 and 5 of {dir}/latency.csv); a line needs one y per x: narrow it with --where or --series (the rows differ in batch)", "{dir}/latency.csv", "--x", "context", "--y", "ms", "--series", "method")]
    [InlineData(CliApp.Failed, "series 'quest', point 2 (131072, 0): y value 0 cannot go on a logarithmic y axis", "{dir}/zero.csv", "--x", "context", "--y", "ms", "--series", "method", "--log-y")]
    [InlineData(CliApp.Usage, "plot needs --y COLUMN", "{dir}/latency.csv", "--x", "context")]
    public void ErrorsNameTheProblemAndWriteNothing(int code, string message, params string[] args)
    {
        var arguments = args.Contains("-o") ? args : [.. args, "-o", "{dir}/out.png"];

        var result = Plot(arguments);

        Assert.Equal(code, result.Code);
        Assert.Contains(message.Replace("{dir}", _scratch, StringComparison.Ordinal), result.Err);
        Assert.Equal(["latency.csv", "words.csv", "zero.csv"], Directory.GetFiles(_scratch).Select(Path.GetFileName).Order());
    }
}
