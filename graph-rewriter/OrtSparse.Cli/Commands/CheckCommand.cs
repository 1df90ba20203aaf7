using System.Globalization;
using OrtSparse.Runtime.Generation;

namespace OrtSparse.Cli.Commands;

/// <summary><c>ortsparse check MODEL DATASET_DIR...</c>: runs the model on golden data and compares its outputs.</summary>
internal static class CheckCommand
{
    private const double DefaultAtol = 1e-5, DefaultRtol = 1e-3;

    private const string Usage = """
        usage: ortsparse check MODEL DATASET_DIR... [--atol 1e-5] [--rtol 1e-3] [--device cpu|cuda] [--threads N]

        Runs MODEL (with OrtSparse's ops registered) on each data set in ONNX's test layout
        (test_data_set_N/input_K.pb and output_K.pb, serialized TensorProtos; a folder holding
        test_data_set_* folders is expanded) and prints the maximum absolute and relative error of
        every output. An element passes when |actual - expected| <= atol + rtol * |expected|.
        Exits 1 when any output mismatches.

        Decode mode: when MODEL has a KV cache (patched with --add-cache, its runtime config beside
        it) and a data set holds only input_ids (int64 [B, N]) with one expected output, the logits
        of the last K positions ([B, K, V], 1 <= K < N), the model runs through the runtime's
        generator: the first N - K tokens as a prompt, then each of the last K tokens as one decode
        step; row i is compared with the logits after token N - K + i. This checks a sparse method's
        decode path (its prefill is exact).
        """;

    public static int Run(string[] args, TextWriter stdout)
    {
        var line = CommandLine.Parse(args, ["--atol", "--rtol", "--device", "--threads"], ["--help", "-h"]);
        if (line.Flag("--help") || line.Flag("-h"))
        {
            stdout.WriteLine(Usage);
            return CliApp.Ok;
        }
        if (line.Positional.Count < 2)
        {
            throw new UsageException("check takes a MODEL and at least one DATASET_DIR");
        }
        var atol = line.Double("--atol", DefaultAtol);
        var rtol = line.Double("--rtol", DefaultRtol);
        if (atol < 0 || rtol < 0)
        {
            throw new UsageException($"tolerances must not be negative (atol {atol}, rtol {rtol})");
        }
        var options = new ModelOptions { Device = DeviceOption.Parse(line.Option("--device")), IntraOpThreads = line.Int("--threads", 0, 0, 1024) };
        var dataSets = GoldenCheck.FindDataSets(line.Positional.Skip(1));

        var results = GoldenCheck.Run(line.Positional[0], options, dataSets, atol, rtol);
        var rows = results.Select(r => new[]
        {
            r.DataSet, r.Output, Format(r.MaxAbsError), Format(r.MaxRelError), r.Passed ? "ok" : "MISMATCH" + (r.Problem is null ? "" : $": {r.Problem}"),
        }).ToList();
        Table.Write(stdout, ["data set", "output", "max abs err", "max rel err", "result"], rows);
        var failed = results.Count(r => !r.Passed);
        stdout.WriteLine(failed == 0
            ? $"all {results.Count} outputs match (atol {atol:g}, rtol {rtol:g})"
            : $"{failed} of {results.Count} outputs mismatch (atol {atol:g}, rtol {rtol:g})");
        return failed == 0 ? CliApp.Ok : CliApp.Failed;
    }

    private static string Format(double value) => double.IsNaN(value) ? "-" : value.ToString("0.###e+0", CultureInfo.InvariantCulture);
}
