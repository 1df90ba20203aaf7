using System.Globalization;
using OrtSparse.Cli.Bench.Fidelity;

namespace OrtSparse.Cli.Commands;

/// <summary><c>ortsparse bench fidelity</c>: perplexity, top-1 agreement with dense, needle-in-code and recall of each method at each budget.</summary>
internal static class BenchFidelityCommand
{
    private const string Usage = """
        usage: ortsparse bench fidelity MODEL_DIR --text PATH... [--context 8192] [--ppl-windows 8] [--ppl-tokens 512] [--batch 8]
                                        [--needle-lengths 2048,4096,8192,16384] [--needle-depths 10,30,50,70,90] [--needle-trials 4]
                                        [--methods topk,streaming,quest,loki,saap,hash] [--budgets 1/4,1/8,1/16,1/32,1/64]
                                        [--calibration CALIB] [--PARAMETER value ...] [--dense-layers 0] [--recall-queries 32]
                                        [--device cpu|cuda] [--threads 0] [--prefill-chunk 2048] [--seed 0] [--out DIR]

        How much of a model's quality each sparse method keeps at each budget. MODEL_DIR holds an
        input_ids -> logits export (model.onnx) and its tokenizer.json; it is patched with a KV cache
        (as 'ortsparse patch --add-cache') with dense and with each method at each budget, into a
        temporary folder, and run by our runtime. Everything is measured in decode mode: the prompt is
        prefilled (exact for every method but hash), and every scored token's logits come from a decode
        step (one new token), where the methods select keys.

          --text PATH          held-out code: files, or directories read in sorted order (repeat it or
                               separate paths with commas); tokenized with the model's tokenizer and
                               joined with its end-of-text token between files
          perplexity           --ppl-windows windows of --context tokens spread evenly over the text; the
                               first context - ppl-tokens are the prompt, the last --ppl-tokens are scored
                               one decode step each with the true token fed back (teacher forcing);
                               perplexity = exp(mean negative log-likelihood), run --batch windows at once
          top-1 agreement      share of scored positions where the method's argmax equals dense's
          needle-in-code       per length x depth x trial: a haystack of held-out code (seeded offsets)
                               with the line SECRET_TOKEN = "<8 hex digits>" at the line boundary nearest
                               the depth, the prompt ending with a newline and SECRET_TOKEN = "; the
                               prompt is exactly the length. Found when the teacher-forced argmax is every
                               token of the secret. A length's prompts run --batch at a time.
          recall               per layer, the exact softmax mass of the keys the method's decode steps select
                               for the last --recall-queries positions of the first window (its queries,
                               keys and values captured from the unpatched model; 0 leaves recall out)
          --dense-layers N     keep the first N layers dense in every sparse config (as Quest keeps its
                               first two); they read their whole cache
          --methods            decode methods: topk, streaming, quest, loki, saap, hash (dense always runs
                               first); loki and saap need --calibration (default MODEL_DIR/calibration.onnx
                               when present)
          --budgets            fractions of the cache in (0, 1], as 1/16 or 0.0625. streaming ignores
                               the budget: at budget b it runs with window 64 + ceil(b * context) (64 is
                               --window when given), so that it reads as many keys as the others
          --PARAMETER value    other method parameters (--sink, --window, --dense-below, --page-size,
                               --rank, ...), for every method that takes them
          --out DIR            write DIR/fidelity.csv (every number), DIR/fidelity.md (the command line,
                               the table, needle accuracy per length) and PNG plots against the budget:
                               perplexity, needle accuracy at --context, top-1 agreement, recall
                               (docs/fidelity/ is where the project keeps them)
        """;

    private static readonly string[] MethodParameterOptions =
        [.. MethodOptions.Names.Where(n => n is not ("--method" or "--dense-layers" or "--layer-method" or "--budget"))];

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var line = CommandLine.Parse(args,
            ["--text", "--context", "--ppl-windows", "--ppl-tokens", "--batch", "--needle-lengths", "--needle-depths", "--needle-trials", "--methods", "--budgets",
             "--calibration", "--dense-layers", "--recall-queries", "--device", "--threads", "--prefill-chunk", "--seed", "--out", .. MethodParameterOptions],
            ["--help", "-h"]);
        if (line.Flag("--help") || line.Flag("-h"))
        {
            stdout.WriteLine(Usage);
            return CliApp.Ok;
        }
        if (line.Positional.Count != 1)
        {
            throw new UsageException("bench fidelity takes exactly one MODEL_DIR (a folder with model.onnx and tokenizer.json)");
        }
        var modelDir = line.Positional[0];
        var texts = line.Options("--text").SelectMany(t => t.Split(',', StringSplitOptions.RemoveEmptyEntries)).ToList();
        if (texts.Count == 0)
        {
            throw new UsageException("bench fidelity needs held-out text: --text PATH (files or directories of code)");
        }
        var defaultCalibration = Path.Combine(Directory.Exists(modelDir) ? modelDir : Path.GetDirectoryName(Path.GetFullPath(modelDir))!, "calibration.onnx");
        var calibration = line.Option("--calibration") ?? (File.Exists(defaultCalibration) ? defaultCalibration : null);
        if (calibration is not null && !File.Exists(calibration))
        {
            throw new UsageException($"--calibration {calibration}: no such file");
        }
        var settings = new FidelitySettings
        {
            ModelPath = modelDir,
            TextPaths = texts,
            CalibrationPath = calibration,
            Device = DeviceOption.Parse(line.Option("--device")),
            Threads = line.Int("--threads", 0, min: 0),
            Context = line.Int("--context", 8192, min: 3),
            PerplexityWindows = line.Int("--ppl-windows", 8, min: 1),
            PerplexityTokens = line.Int("--ppl-tokens", 512, min: 1),
            Batch = line.Int("--batch", 8, min: 1),
            NeedleLengths = Integers(line, "--needle-lengths", "2048,4096,8192,16384", min: 1),
            NeedleDepths = Integers(line, "--needle-depths", "10,30,50,70,90", min: 0, max: 100),
            NeedleTrials = line.Int("--needle-trials", 4, min: 1),
            Methods = [.. Split(line.Option("--methods") ?? "topk,streaming,quest,loki,saap,hash").Where(m => m != "dense")],
            Budgets = [.. Split(line.Option("--budgets") ?? "1/4,1/8,1/16,1/32,1/64").Select(ParseBudget)],
            Parameters = MethodOptions.SharedParameters(line),
            RecallQueries = line.Int("--recall-queries", 32, min: 0),
            PrefillChunkTokens = line.Int("--prefill-chunk", 2048, min: 1),
            DenseLayers = line.Int("--dense-layers", 0, min: 0),
            Seed = line.Int("--seed", 0),
        };
        try
        {
            settings.Validate();
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message);
        }
        var output = line.Option("--out");
        var result = FidelityBenchmark.Run(settings, stderr);
        FidelityReport.WriteTable(stdout, result);
        if (output is not null)
        {
            var files = FidelityReport.Write(output, result, CommandText(args));
            stdout.WriteLine($"wrote {string.Join(", ", files.Select(Path.GetFileName))} -> {output}");
        }
        return CliApp.Ok;
    }

    /// <summary>A budget: a fraction "1/16" or a decimal, in (0, 1].</summary>
    internal static double ParseBudget(string text)
    {
        var slash = text.IndexOf('/');
        double value;
        if (slash >= 0)
        {
            value = double.TryParse(text[..slash], NumberStyles.Float, CultureInfo.InvariantCulture, out var numerator)
                    && double.TryParse(text[(slash + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out var denominator) && denominator != 0
                ? numerator / denominator
                : throw new UsageException($"--budgets: '{text}' is not a fraction (write 1/16 or 0.0625)");
        }
        else if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value))
        {
            throw new UsageException($"--budgets: '{text}' is not a number (write 1/16 or 0.0625)");
        }
        return double.IsFinite(value) && value > 0 && value <= 1
            ? value
            : throw new UsageException($"--budgets: {text} is outside (0, 1]; a budget is a fraction of the cache");
    }

    private static List<int> Integers(CommandLine line, string name, string fallback, int min, int max = int.MaxValue) =>
        Split(line.Option(name) ?? fallback).Select(part =>
            int.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max
                ? value
                : throw new UsageException($"{name}: '{part}' is not an integer from {min} to {max}")).ToList();

    private static string[] Split(string text) => text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>The command line as a shell would take it back.</summary>
    private static string CommandText(string[] args) =>
        "ortsparse bench fidelity " + string.Join(' ', args.Select(a => a.Length > 0 && a.All(c => char.IsAsciiLetterOrDigit(c) || "-_./,=:+".Contains(c)) ? a : $"'{a.Replace("'", "'\\''")}'"));
}
