using System.Diagnostics;
using System.Globalization;
using OrtSparse.Calibration;
using OrtSparse.Cli.Calibrate;

namespace OrtSparse.Cli.Commands;

/// <summary><c>ortsparse capture MODEL --tokens FILE -o CACHE</c>: the queries, keys and values a model's attention layers see on one sequence.</summary>
internal static class CaptureCommand
{
    /// <summary>The metadata entry that marks a capture file (a calibration-format file of captured tensors).</summary>
    public const string MarkerKey = "ortsparse.capture";

    private const string Usage = """
        usage: ortsparse capture MODEL --tokens FILE -o CACHE [--layers 0,1,...]

        Runs the original MODEL on one token sequence (whitespace- or comma-separated ids) from an
        empty cache and saves, for each attention layer (all, or those of --layers, numbered as
        'inspect' lists the sites), its queries [Hq, T, D], keys [Hkv, T, D] and values [Hkv, T, Dv]
        as the attention reads them. 'ortsparse bench attention --cache CACHE --layer N' then times
        a decode step over that real cache. The file is ONNX (initializers only) and must stay
        under 2 GiB: about 4·T·(Hq·D + Hkv·(D + Dv)) bytes per layer.
        """;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var line = CommandLine.Parse(args, ["--tokens", "-o", "--output", "--layers"], ["--help", "-h"]);
        if (line.Flag("--help") || line.Flag("-h"))
        {
            stdout.WriteLine(Usage);
            return CliApp.Ok;
        }
        if (line.Positional.Count != 1)
        {
            throw new UsageException("capture takes exactly one MODEL");
        }
        if (line.Options("--tokens").Count != 1)
        {
            throw new UsageException("capture needs exactly one --tokens FILE (one sequence)");
        }
        var output = line.Option("-o", "--output") ?? throw new UsageException("capture needs -o CACHE");
        ModelFiles.EnsureDistinct(line.Positional[0], output);

        var clock = Stopwatch.StartNew();
        var model = ModelFiles.Load(line.Positional[0]).Proto;
        var tokens = TokenFiles.Read(line.Options("--tokens")[0]);
        var progress = new ProgressBar(stderr, "capturing activations", 1);
        var sites = ActivationCapture.Run(model, [tokens], new SynchronousProgress<int>(done => progress.Report(done)), withValues: true);
        var layers = ParseLayers(line.Option("--layers"), sites.Count);

        var capture = new CalibrationData();
        capture.SetMetadata(MarkerKey, "1");
        capture.SetMetadata("source_model", Path.GetFileName(line.Positional[0]));
        capture.SetMetadata("tokens", tokens.Length.ToString(CultureInfo.InvariantCulture));
        foreach (var layer in layers)
        {
            var site = sites[layer];
            capture.SetTensor(CalibrationNames.CapturedQueries(layer), Stack(site.Queries, tokens.Length, site.HeadDim));
            capture.SetTensor(CalibrationNames.CapturedKeys(layer), Stack(site.Keys, tokens.Length, site.HeadDim));
            capture.SetTensor(CalibrationNames.CapturedValues(layer), Stack(site.Values!, tokens.Length, site.ValueHeadDim));
        }
        capture.Save(output);
        stdout.WriteLine($"captured {layers.Count} layer(s) on {tokens.Length} tokens in {clock.Elapsed.TotalSeconds:0.0} s -> {output}");
        return CliApp.Ok;
    }

    private static List<int> ParseLayers(string? text, int siteCount)
    {
        if (text is null)
        {
            return Enumerable.Range(0, siteCount).ToList();
        }
        var layers = new List<int>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out var layer) || layer < 0 || layer >= siteCount)
            {
                throw new UsageException($"--layers: '{part}' is not a layer of this model (it has {siteCount} attention layer(s), 0 to {siteCount - 1})");
            }
            layers.Add(layer);
        }
        return layers.Count > 0 ? layers.Distinct().Order().ToList() : throw new UsageException("--layers names no layer");
    }

    /// <summary>Per-head [T, width] rows as one [heads, T, width] tensor.</summary>
    private static CalibrationTensor Stack(float[][] perHead, int length, int width)
    {
        var values = new float[(long)perHead.Length * length * width];
        for (var h = 0; h < perHead.Length; h++)
        {
            perHead[h].CopyTo(values, (long)h * length * width);
        }
        return new CalibrationTensor(values, perHead.Length, length, width);
    }
}
