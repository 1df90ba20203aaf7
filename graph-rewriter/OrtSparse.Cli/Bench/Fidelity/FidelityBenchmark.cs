using System.Diagnostics;
using System.Globalization;
using OrtSparse.Calibration;
using OrtSparse.Cli.Calibrate;
using OrtSparse.GraphRewriter;
using OrtSparse.Runtime;
using OrtSparse.Runtime.Generation;
using OrtSparse.Runtime.Text;

namespace OrtSparse.Cli.Bench.Fidelity;

/// <summary>What <see cref="FidelityBenchmark"/> measures.</summary>
public sealed record FidelitySettings
{
    /// <summary>The unpatched model (an input_ids → logits export; its folder holds tokenizer.json).</summary>
    public required string ModelPath { get; init; }

    /// <summary>Held-out text: files, or directories whose files are read in ordinal order of path.</summary>
    public required IReadOnlyList<string> TextPaths { get; init; }

    /// <summary>Calibration (<c>ortsparse calibrate</c>) for loki and saap, used by hash when given; null for none.</summary>
    public string? CalibrationPath { get; init; }

    /// <summary>Where the patched models run.</summary>
    public ExecutionDevice Device { get; init; }

    /// <summary>Intra-op threads (0: ONNX Runtime's choice).</summary>
    public int Threads { get; init; }

    /// <summary>Tokens per perplexity window: the trained context.</summary>
    public int Context { get; init; } = 8192;

    /// <summary>Perplexity windows, spread evenly over the held-out text.</summary>
    public int PerplexityWindows { get; init; } = 8;

    /// <summary>The last tokens of each window, scored one decode step each.</summary>
    public int PerplexityTokens { get; init; } = 512;

    /// <summary>Most sequences run together.</summary>
    public int Batch { get; init; } = 8;

    /// <summary>Needle prompt lengths; empty for no needle test.</summary>
    public IReadOnlyList<int> NeedleLengths { get; init; } = [2048, 4096, 8192, 16384];

    /// <summary>Needle depths in percent of the haystack.</summary>
    public IReadOnlyList<int> NeedleDepths { get; init; } = [10, 30, 50, 70, 90];

    /// <summary>Needle trials per length and depth (other offsets and secrets).</summary>
    public int NeedleTrials { get; init; } = 4;

    /// <summary>The sparse methods (dense always runs, first).</summary>
    public IReadOnlyList<string> Methods { get; init; } = ["topk", "streaming", "quest", "loki", "saap", "hash"];

    /// <summary>Budgets, fractions of the cache in (0, 1].</summary>
    public IReadOnlyList<double> Budgets { get; init; } = [1.0 / 4, 1.0 / 8, 1.0 / 16, 1.0 / 32, 1.0 / 64];

    /// <summary>Other method parameters (sink, window, dense_below, page_size, ...), given to every method that takes them.</summary>
    public IReadOnlyDictionary<string, double> Parameters { get; init; } = new Dictionary<string, double>();

    /// <summary>The first layers kept dense in every sparse config (Quest keeps its model's first two dense); their recall is 1.</summary>
    public int DenseLayers { get; init; }

    /// <summary>Seed of the needle haystacks and secrets.</summary>
    public int Seed { get; init; }

    /// <summary>Captured queries per layer for the attention recall (passed to the recall measure).</summary>
    public int RecallQueries { get; init; } = 32;

    /// <summary>Prompt tokens per prefill step.</summary>
    public int PrefillChunkTokens { get; init; } = 2048;

    /// <summary>The methods this benchmark measures: those whose decode steps select keys.</summary>
    public static IReadOnlyList<string> DecodeMethods { get; } = ["topk", "streaming", "quest", "loki", "saap", "hash"];

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first invalid setting, with its value.</summary>
    public void Validate()
    {
        ArgumentException.ThrowIfNullOrEmpty(ModelPath);
        Require(TextPaths.Count > 0, "held-out text is needed (--text PATH)");
        Require(PerplexityTokens >= 1, $"ppl tokens ({PerplexityTokens}) must be at least 1");
        Require(Context >= PerplexityTokens + 2, $"context ({Context}) must exceed ppl tokens ({PerplexityTokens}) by at least 2: the prompt needs 2 tokens");
        Require(PerplexityWindows >= 1, $"ppl windows ({PerplexityWindows}) must be at least 1");
        Require(Batch >= 1, $"batch ({Batch}) must be at least 1");
        Require(DenseLayers >= 0, $"dense layers ({DenseLayers}) must not be negative");
        Require(NeedleTrials >= 1, $"needle trials ({NeedleTrials}) must be at least 1");
        Require(NeedleLengths.All(l => l > 0), $"needle lengths ({string.Join(",", NeedleLengths)}) must be positive");
        Require(NeedleDepths.Count > 0 || NeedleLengths.Count == 0, "needle depths are needed with needle lengths");
        Require(NeedleDepths.All(d => d is >= 0 and <= 100), $"needle depths ({string.Join(",", NeedleDepths)}) are percentages from 0 to 100");
        Require(Budgets.Count > 0, "at least one budget is needed");
        Require(Budgets.All(b => b > 0 && b <= 1), $"budgets ({string.Join(",", Budgets.Select(b => b.ToString(CultureInfo.InvariantCulture)))}) must be fractions of the cache in (0, 1]");
        Require(Methods.Count > 0, "at least one method is needed");
        foreach (var method in Methods)
        {
            Require(DecodeMethods.Contains(method), MethodCatalog.All.Any(m => m.Name == method)
                ? $"method '{method}' does not select keys at decode steps (this benchmark measures {string.Join(", ", DecodeMethods)}; dense always runs)"
                : $"unknown method '{method}' (measured here: {string.Join(", ", DecodeMethods)})");
        }
        Require(!Parameters.ContainsKey("budget"), "the budget comes from the budgets list, not the parameters");
        foreach (var name in Parameters.Keys.Where(n => !Methods.Any(m => MethodCatalog.All.First(s => s.Name == m).Parameters.Any(p => p.Name == n))))
        {
            throw new ArgumentException($"--{name}: none of the methods measured ({string.Join(", ", Methods)}) takes it");
        }
        if (CalibrationPath is null && Methods.FirstOrDefault(m => m is "loki" or "saap") is { } needy)
        {
            throw new ArgumentException($"method '{needy}' needs the model's calibration: pass --calibration CALIB (from 'ortsparse calibrate'), or leave {needy} out of --methods");
        }
    }

    private static void Require(bool condition, string message)
    {
        if (!condition)
        {
            throw new ArgumentException(message);
        }
    }
}

/// <summary>One method at one budget (or dense): what it kept of the model's quality.</summary>
/// <param name="Method">The method.</param>
/// <param name="Budget">The budget, or null for dense.</param>
/// <param name="Config">The method and parameters the model was patched with.</param>
/// <param name="Perplexity">exp(mean negative log-likelihood) over every scored position.</param>
/// <param name="Top1Agreement">Share of scored positions where the argmax equals dense's.</param>
/// <param name="NeedleByLength">Share of needles found, by prompt length.</param>
/// <param name="NeedleByLengthDepth">Share of needles found, by prompt length and depth in percent.</param>
/// <param name="LayerRecall">Attention recall per layer (0..1) on captured queries, when measured.</param>
public sealed record FidelityRow(string Method, double? Budget, MethodConfig Config, double Perplexity, double Top1Agreement,
    IReadOnlyDictionary<int, double> NeedleByLength, IReadOnlyDictionary<(int Length, int Depth), double> NeedleByLengthDepth,
    IReadOnlyList<double>? LayerRecall)
{
    /// <summary>Mean of <see cref="LayerRecall"/>, or null.</summary>
    public double? MeanRecall => LayerRecall is { Count: > 0 } recall ? recall.Average() : null;
}

/// <summary>The benchmark's rows (dense first) and what they were measured on.</summary>
/// <param name="Settings">The settings.</param>
/// <param name="Rows">Dense, then each method at each budget.</param>
/// <param name="HeldOutTokens">Tokens of the held-out stream.</param>
/// <param name="Windows">The perplexity windows.</param>
/// <param name="Needles">The needle cases.</param>
/// <param name="Elapsed">Wall time of the whole run.</param>
public sealed record FidelityResult(FidelitySettings Settings, IReadOnlyList<FidelityRow> Rows, int HeldOutTokens, IReadOnlyList<int[]> Windows,
    IReadOnlyList<NeedleCase> Needles, TimeSpan Elapsed);

/// <summary>
/// <c>ortsparse bench fidelity</c>: how much of a model's quality each sparse method keeps at each budget, in decode
/// mode (the prompt is prefilled, every scored token comes from a decode step): held-out perplexity, top-1 agreement
/// with dense, needle-in-code retrieval and, when given a measure, attention recall per layer.
/// </summary>
public static class FidelityBenchmark
{
    /// <summary>The window streaming reads beyond the others' at budget b: 64 + ceil(b · context) (the catalog's window, or the one given).</summary>
    public static int StreamingWindow(double budget, int context, IReadOnlyDictionary<string, double> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var window = parameters.TryGetValue("window", out var given) ? given : MethodCatalog.Get("streaming").Parameters.First(p => p.Name == "window").Default!.Value;
        return (int)window + (int)Math.Ceiling(budget * context);
    }

    /// <summary>
    /// The config of <paramref name="method"/> at <paramref name="budget"/>: the shared parameters it takes and the budget;
    /// streaming, which ignores the budget, gets <see cref="StreamingWindow"/> so that it reads as many keys at the trained context.
    /// </summary>
    public static MethodConfig ConfigFor(string method, double budget, FidelitySettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var takes = MethodCatalog.Get(method).Parameters.Select(p => p.Name).ToHashSet();
        var parameters = settings.Parameters.Where(p => takes.Contains(p.Key)).ToDictionary(p => p.Key, p => p.Value);
        if (method == "streaming")
        {
            parameters["window"] = StreamingWindow(budget, settings.Context, settings.Parameters);
        }
        else
        {
            parameters["budget"] = budget;
        }
        var config = new MethodConfig { Method = method, Parameters = parameters };
        config.Validate();
        return config;
    }

    /// <summary>Runs the benchmark; progress goes to <paramref name="log"/>.</summary>
    /// <param name="settings">What to measure.</param>
    /// <param name="log">Progress (stderr).</param>
    /// <param name="layerRecall">
    /// Per-layer attention recall (0..1) of a method config; null measures it with <see cref="LayerRecall"/> on the first
    /// perplexity window's captured queries (its last <see cref="FidelitySettings.RecallQueries"/> positions), or leaves it out
    /// when RecallQueries is 0.
    /// </param>
    public static FidelityResult Run(FidelitySettings settings, TextWriter log, Func<MethodConfig, IReadOnlyList<double>>? layerRecall = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(log);
        settings.Validate();
        var clock = Stopwatch.StartNew();
        var modelPath = ModelFile(settings.ModelPath);
        using var tokenizer = Tokenizer.Load(Path.GetDirectoryName(Path.GetFullPath(modelPath))!);
        var separator = tokenizer.EosTokenIds.Count > 0 ? tokenizer.EosTokenIds[0]
            : tokenizer.TokenToId("<|endoftext|>") ?? throw new InvalidDataException("the tokenizer names no end-of-text token (eos_token in tokenizer_config.json, or <|endoftext|>) to join files with");
        var stream = HeldOutText.Tokens(tokenizer, HeldOutText.Files(settings.TextPaths), separator);
        var windows = HeldOutText.Windows(stream, settings.PerplexityWindows, settings.Context);
        var builder = new NeedlePrompts(tokenizer, stream);
        var needles = settings.NeedleLengths.SelectMany(length => settings.NeedleDepths.SelectMany(depth =>
            Enumerable.Range(0, settings.NeedleTrials).Select(trial => builder.Build(length, depth, trial, settings.Seed)))).ToList();
        var calibration = settings.CalibrationPath is { } path ? CalibrationData.Load(path) : null;

        // Room for the longest sequence: a window, or a needle prompt and its answer.
        var longest = Math.Max(settings.Context, needles.Select(n => n.Length + n.Answer.Length).DefaultIfEmpty(0).Max());
        var maxLength = (longest + 64 + 63) / 64 * 64;
        var configs = new List<(string Method, double? Budget, MethodConfig Config)> { ("dense", null, new MethodConfig()) };
        configs.AddRange(settings.Methods.Distinct().SelectMany(m => settings.Budgets.Select(b => (m, (double?)b, ConfigFor(m, b, settings)))));

        var source = ModelFiles.Load(modelPath);
        if (layerRecall is null && settings.RecallQueries > 0)
        {
            log.WriteLine($"bench fidelity: capturing the queries, keys and values of a {settings.Context}-token window for recall");
            var captured = ActivationCapture.Run(source.Proto, [windows[0].Select(t => (long)t).ToArray()], withValues: true);
            var session = new SessionConfig { Device = settings.Device, IntraOpThreads = settings.Threads };
            layerRecall = config => LayerRecall.Measure(source.Proto, captured, config, calibration, new RecallOptions(settings.RecallQueries, session));
        }
        var batches = Batches(windows, settings.Batch).Count + settings.NeedleLengths.Sum(l => Batches(needles.Where(n => n.Length == l).ToList(), settings.Batch).Count);
        var progress = new ProgressBar(log, "bench fidelity", configs.Count * batches);
        var done = 0;
        var rows = new List<FidelityRow>();
        int[][]? denseArgmax = null;
        var work = Directory.CreateTempSubdirectory("ortsparse-fidelity-").FullName;
        try
        {
            foreach (var (method, budget, config) in configs)
            {
                var label = budget is { } b ? $"{method} at {FormatBudget(b)}" : method;
                progress.Report(done, $"{label}: patching");
                var folder = Path.Combine(work, rows.Count.ToString(CultureInfo.InvariantCulture));
                var result = ModelPatcher.Patch(source.Proto, new PatchOptions
                {
                    Method = config,
                    LayerMethods = settings.DenseLayers > 0 && method != "dense" ? [new LayerMethod(new LayerRange(0, settings.DenseLayers - 1), new MethodConfig())] : [],
                    AddCache = true,
                    MaxLength = maxLength,
                    Calibration = calibration,
                });
                ModelFiles.SavePatched(source, result, Path.Combine(folder, "model.onnx"), verify: null);
                using (var model = Model.Load(folder, new ModelOptions
                {
                    Device = settings.Device,
                    IntraOpThreads = settings.Threads,
                    MaxLength = maxLength,
                    PrefillChunkTokens = settings.PrefillChunkTokens,
                }))
                {
                    var scorer = new GeneratorScorer(model);
                    var (perplexity, argmax) = Perplexity(scorer, windows, settings, () => progress.Report(++done, $"{label}: perplexity"));
                    denseArgmax ??= argmax;
                    var found = needles.Select(_ => false).ToArray();
                    foreach (var length in settings.NeedleLengths)
                    {
                        var indices = Enumerable.Range(0, needles.Count).Where(i => needles[i].Length == length).ToList();
                        foreach (var batch in Batches(indices, settings.Batch))
                        {
                            var scores = scorer.Score(batch.Select(i => needles[i].Prompt).ToList(), batch.Select(i => needles[i].Answer).ToList());
                            for (var k = 0; k < batch.Count; k++)
                            {
                                found[batch[k]] = needles[batch[k]].IsFound(scores[k].Select(s => s.Argmax).ToList());
                            }
                            progress.Report(++done, $"{label}: needles at {length}");
                        }
                    }
                    rows.Add(new FidelityRow(method, budget, config, perplexity, Agreement(argmax, denseArgmax),
                        needles.Select((n, i) => (n, i)).GroupBy(p => p.n.Length).ToDictionary(g => g.Key, g => g.Average(p => found[p.i] ? 1.0 : 0.0)),
                        needles.Select((n, i) => (n, i)).GroupBy(p => (p.n.Length, p.n.DepthPercent)).ToDictionary(g => g.Key, g => g.Average(p => found[p.i] ? 1.0 : 0.0)),
                        method == "dense" ? null : layerRecall?.Invoke(config) is { } recall
                            ? [.. recall.Select((r, layer) => layer < settings.DenseLayers ? 1.0 : r)] : null));
                }
                Directory.Delete(folder, recursive: true);
            }
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
        return new FidelityResult(settings, rows, stream.Length, windows, needles, clock.Elapsed);
    }

    /// <summary>"1/16" for the reciprocal of a whole number, else the decimal.</summary>
    public static string FormatBudget(double budget) =>
        Math.Round(1 / budget) is var n && Math.Abs(1 / n - budget) < 1e-12 * budget
            ? n == 1 ? "1" : string.Create(CultureInfo.InvariantCulture, $"1/{n}")
            : budget.ToString("G6", CultureInfo.InvariantCulture);

    /// <summary>The model file: <paramref name="path"/> itself, or model.onnx in that folder.</summary>
    private static string ModelFile(string path)
    {
        var file = Directory.Exists(path) ? Path.Combine(path, "model.onnx") : path;
        return File.Exists(file) ? file : throw new FileNotFoundException($"no model at {file} (give a model folder holding model.onnx and tokenizer.json, or the .onnx)", file);
    }

    /// <summary>Perplexity over the windows' last tokens, and the argmax at each of them (per window).</summary>
    private static (double Perplexity, int[][] Argmax) Perplexity(GeneratorScorer scorer, int[][] windows, FidelitySettings settings, Action batchDone)
    {
        var prompt = settings.Context - settings.PerplexityTokens;
        var argmax = new int[windows.Length][];
        var nll = 0.0;
        foreach (var batch in Batches(Enumerable.Range(0, windows.Length).ToList(), settings.Batch))
        {
            var scores = scorer.Score(batch.Select(w => windows[w][..prompt]).ToList(), batch.Select(w => windows[w][prompt..]).ToList());
            for (var k = 0; k < batch.Count; k++)
            {
                argmax[batch[k]] = scores[k].Select(s => s.Argmax).ToArray();
                nll -= scores[k].Sum(s => s.LogProbability);
            }
            batchDone();
        }
        return (Math.Exp(nll / (windows.Length * settings.PerplexityTokens)), argmax);
    }

    private static double Agreement(int[][] argmax, int[][] dense) =>
        (double)argmax.Zip(dense).Sum(pair => pair.First.Zip(pair.Second).Count(t => t.First == t.Second)) / argmax.Sum(a => a.Length);

    private static List<List<T>> Batches<T>(IReadOnlyList<T> items, int size) => items.Chunk(size).Select(c => c.ToList()).ToList();
}
