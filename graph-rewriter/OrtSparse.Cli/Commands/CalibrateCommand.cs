using System.Diagnostics;
using System.Globalization;
using OrtSparse.Cli.Calibrate;

namespace OrtSparse.Cli.Commands;

/// <summary><c>ortsparse calibrate MODEL --tokens FILE… -o CALIB</c>: computes what loki, saap and hash need.</summary>
internal static class CalibrateCommand
{
    private const string Usage = """
        usage: ortsparse calibrate MODEL --tokens FILE [--tokens FILE ...] -o CALIB
                                   [--methods loki,saap,hash] [--seed 0] [--clusters 1024] [--hidden 256]
                                   [--epochs 20] [--sink 4] [--window 64] [--buckets 16] [--rounds 2]

        Runs the original MODEL on each token file (whitespace- or comma-separated token ids, one
        sequence per file, each from an empty cache), captures every attention site's queries and
        keys, and computes per layer and head: loki's PCA bases, saap's spherical k-means centroids
        and query classifiers (trained so their top clusters capture the attention mass of keys
        outside the sink and window), and hash's projections. Deterministic for a seed. Use the
        result with 'ortsparse patch ... --calibration CALIB'.
        """;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var line = CommandLine.Parse(args,
            ["--tokens", "-o", "--output", "--methods", "--seed", "--clusters", "--hidden", "--epochs", "--sink", "--window", "--buckets", "--rounds"],
            ["--help", "-h"]);
        if (line.Flag("--help") || line.Flag("-h"))
        {
            stdout.WriteLine(Usage);
            return CliApp.Ok;
        }
        if (line.Positional.Count != 1)
        {
            throw new UsageException("calibrate takes exactly one MODEL");
        }
        var tokenFiles = line.Options("--tokens");
        if (tokenFiles.Count == 0)
        {
            throw new UsageException("calibrate needs at least one --tokens FILE");
        }
        var output = line.Option("-o", "--output") ?? throw new UsageException("calibrate needs -o CALIB");
        var methods = (line.Option("--methods") ?? "loki,saap,hash").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet();
        var unknown = methods.Except(["loki", "saap", "hash"]).ToList();
        if (unknown.Count > 0)
        {
            throw new UsageException($"--methods: '{unknown[0]}' needs no calibration or is unknown (calibrated methods: loki, saap, hash)");
        }
        var options = new CalibratorOptions
        {
            Methods = methods,
            Seed = line.Int("--seed", 0),
            Clusters = line.Int("--clusters", 1024, 1, 1 << 16),
            HiddenUnits = line.Int("--hidden", 256, 1, 1 << 14),
            Epochs = line.Int("--epochs", 20, 1, 100000),
            Sink = line.Int("--sink", 4, 0, int.MaxValue),
            Window = line.Int("--window", 64, 0, int.MaxValue),
            Buckets = line.Int("--buckets", 16, 2, 1 << 16),
            Rounds = line.Int("--rounds", 2, 1, 64),
        };
        if (options.Buckets % 2 != 0)
        {
            throw new UsageException($"--buckets ({options.Buckets}) must be even");
        }
        ModelFiles.EnsureDistinct(line.Positional[0], output);

        var clock = Stopwatch.StartNew();
        var model = ModelFiles.Load(line.Positional[0]).Proto;
        var sequences = tokenFiles.Select(TokenFiles.Read).ToList();
        var capture = new ProgressBar(stderr, "capturing activations", sequences.Count);
        var sites = ActivationCapture.Run(model, sequences, new SynchronousProgress<int>(done => capture.Report(done)));
        var calibration = Calibrator.Compute(sites, options, stderr);
        calibration.SetMetadata("source_model", Path.GetFileName(line.Positional[0]));
        calibration.SetMetadata("tokens", sequences.Sum(s => s.Length).ToString(CultureInfo.InvariantCulture));
        calibration.Save(output);
        stdout.WriteLine($"calibrated {string.Join(", ", methods.Order())} for {sites.Count} layer(s) on {sequences.Sum(s => s.Length)} tokens in {clock.Elapsed.TotalSeconds:0.0} s -> {output}");
        return CliApp.Ok;
    }
}
