using System.Globalization;
using System.Text.Json;
using OrtSparse.GraphRewriter;
using OrtSparse.Onnx;
using OrtSparse.Runtime;
using OrtSparse.Runtime.Generation;

namespace OrtSparse.Cli.Bench.Generate;

/// <summary>What <see cref="GenerateBenchmark"/> measures.</summary>
public sealed record GenerateBenchSettings
{
    /// <summary>Where every engine runs.</summary>
    public ExecutionDevice Device { get; init; }

    /// <summary>The decoder all engines run (its MaxLength is set from the contexts).</summary>
    public required DecoderShape Shape { get; init; }

    /// <summary>Prompt lengths.</summary>
    public required IReadOnlyList<int> Contexts { get; init; }

    /// <summary>Tokens generated after each prompt (the first one counts towards time to first token).</summary>
    public int NewTokens { get; init; } = 64;

    /// <summary>Sequences per batch.</summary>
    public int Batch { get; init; } = 1;

    /// <summary>Our methods to run besides dense, each on the model patched with it.</summary>
    public IReadOnlyList<string> Methods { get; init; } = ["quest", "topk", "streaming"];

    /// <summary>The methods' parameters (budget, page_size, ...), given to every method that takes them.</summary>
    public IReadOnlyDictionary<string, double> Parameters { get; init; } = new Dictionary<string, double>();

    /// <summary>Whether ONNX Runtime GenAI runs too (it has no CUDA library here; see the command's help).</summary>
    public bool GenAi { get; init; } = true;

    /// <summary>Prefill chunk of our runtime.</summary>
    public int PrefillChunkTokens { get; init; } = 2048;

    /// <summary>Our runtime's cache growth step.</summary>
    public int CacheGrowthTokens { get; init; } = 64;

    /// <summary>Intra-op threads (0: ONNX Runtime's choice).</summary>
    public int Threads { get; init; }

    /// <summary>Folder for the written and patched models (reused when the shape matches).</summary>
    public required string WorkFolder { get; init; }
}

/// <summary>One engine's generation at one context.</summary>
/// <param name="Context">Prompt length.</param>
/// <param name="Engine"><c>genai</c>, <c>onnxruntime-gqa</c> (the unpatched model in our loop) or one of our methods.</param>
/// <param name="TimeToFirstTokenMs">Prompt processing and the first token.</param>
/// <param name="PrefillTokensPerSecond">Prompt tokens over the time to first token.</param>
/// <param name="DecodeTokensPerSecond">Tokens after the first, over their time (all sequences).</param>
/// <param name="CacheRead">Share of the KV cache a decode step reads (1 for dense engines).</param>
/// <param name="SameAsDense">Share of the generated tokens equal to dense's at the same position.</param>
/// <param name="Problem">Why the engine did not run, or null.</param>
public sealed record GenerateBenchRow(int Context, string Engine, double TimeToFirstTokenMs, double PrefillTokensPerSecond, double DecodeTokensPerSecond,
    double CacheRead, double? SameAsDense, string? Problem = null)
{
    /// <summary>Share of the whole generation's time spent inside ONNX Runtime's session runs (our runtime's engines only).</summary>
    public double? RunShare { get; init; }
}

/// <summary>
/// <c>ortsparse bench generate</c>: end-to-end generation of one decoder, written in ONNX Runtime
/// GenAI's format, by GenAI, by our runtime on the unpatched model (ONNX Runtime's
/// GroupQueryAttention kernels) and by our runtime on the model patched with dense and each method.
/// </summary>
public static class GenerateBenchmark
{
    /// <summary>The engine name of the unpatched GenAI-format model run by our runtime.</summary>
    public const string OnnxRuntimeGqa = "onnxruntime-gqa";

    /// <summary>The engine name of ONNX Runtime GenAI.</summary>
    public const string GenAiName = "genai";

    /// <summary>Runs the benchmark, reporting progress to <paramref name="log"/>.</summary>
    public static IReadOnlyList<GenerateBenchRow> Run(GenerateBenchSettings settings, TextWriter log)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (settings.Contexts.Count == 0 || settings.Contexts.Any(c => c < 1))
        {
            throw new ArgumentException("contexts must be positive lengths");
        }
        var shape = (settings.Shape with { MaxLength = settings.Contexts.Max() + settings.NewTokens + 64 }).Validate();
        var decoder = PrepareDecoder(shape, settings.WorkFolder, log);
        // Dense first: the others' tokens are compared with its.
        List<string> engines = ["dense", OnnxRuntimeGqa];
        if (settings.GenAi)
        {
            engines.Add(GenAiName);
        }
        engines.AddRange(settings.Methods.Where(m => m != "dense"));
        var folders = engines.Where(e => e != GenAiName).ToDictionary(e => e, e => e == OnnxRuntimeGqa ? decoder : PatchedFolder(decoder, e, settings, log));

        var rows = new List<GenerateBenchRow>();
        var denseTokens = new Dictionary<int, int[][]>();
        var progress = new ProgressBar(log, "bench generate", settings.Contexts.Count * engines.Count);
        var done = 0;
        foreach (var engine in engines)
        {
            using var runner = EngineRunner.Open(engine, engine == GenAiName ? decoder : folders[engine], settings, shape.MaxLength);
            foreach (var context in settings.Contexts)
            {
                progress.Report(done, $"{engine} at {context}");
                var (row, tokens) = runner.Measure(context, Prompts(settings, shape, context));
                if (engine == "dense")
                {
                    denseTokens[context] = tokens;
                }
                rows.Add(tokens.Length == 0 ? row : row with { SameAsDense = SameAsDense(tokens, denseTokens[context]) });
                progress.Report(++done);
            }
        }
        return rows;
    }

    /// <summary>Share of <paramref name="tokens"/> equal to <paramref name="dense"/>'s at the same position.</summary>
    private static double SameAsDense(int[][] tokens, int[][] dense) =>
        (double)tokens.Zip(dense).Sum(pair => pair.First.Zip(pair.Second).Count(t => t.First == t.Second)) / tokens.Sum(t => t.Length);

    /// <summary>The batch's prompts at <paramref name="context"/>: seeded token ids, one sequence each.</summary>
    private static int[][] Prompts(GenerateBenchSettings settings, DecoderShape shape, int context)
    {
        var random = new Random(context);
        return Enumerable.Range(0, settings.Batch)
            .Select(_ => Enumerable.Range(0, context).Select(_ => random.Next(2, shape.Vocab)).ToArray()).ToArray();
    }

    /// <summary>The decoder's folder (written unless one of the same shape is there), with a runtime config so our runtime runs it unpatched.</summary>
    private static string PrepareDecoder(DecoderShape shape, string work, TextWriter log)
    {
        var folder = Path.Combine(work, string.Create(CultureInfo.InvariantCulture,
            $"decoder-l{shape.Layers}-h{shape.Hidden}-q{shape.Heads}-kv{shape.KvHeads}-d{shape.HeadSize}-i{shape.Intermediate}-v{shape.Vocab}-t{shape.MaxLength}-{shape.ElementType}-s{shape.Seed}"));
        if (!File.Exists(Path.Combine(folder, DecoderModelWriter.ConfigFileName)))
        {
            log.WriteLine($"bench generate: writing the decoder ({shape.ParameterCount / 1e6:F0} M parameters, {shape.WeightBytes / 1e9:F2} GB) to {folder}");
            DecoderModelWriter.Write(shape, folder);
        }
        var config = Path.Combine(folder, "model.ortsparse.json");
        if (!File.Exists(config))
        {
            using var pending = new PendingFile(config);
            using (var writer = new StreamWriter(pending.Stream, leaveOpen: true))
            {
                writer.Write(UnpatchedConfig(shape));
            }
            pending.Commit();
        }
        return folder;
    }

    /// <summary>A runtime config describing the unpatched model: its GroupQueryAttention layers, shared-buffer caches, dense.</summary>
    private static string UnpatchedConfig(DecoderShape shape) => JsonSerializer.Serialize(new
    {
        format = ModelConfig.Format,
        format_version = ModelConfig.FormatVersion,
        producer = new { name = "ortsparse bench generate", version = ModelPatcher.ToolVersion },
        model = DecoderModelWriter.ModelFileName,
        num_layers = shape.Layers,
        max_length = shape.MaxLength,
        layers = Enumerable.Range(0, shape.Layers).Select(layer => new
        {
            layer,
            node = "",
            form = "com.microsoft.GroupQueryAttention",
            num_heads = shape.Heads,
            kv_num_heads = shape.KvHeads,
            head_size = shape.HeadSize,
            element_type = shape.ElementSize == 2 ? "float16" : "float",
            cache = new
            {
                mode = "shared_buffer",
                added = false,
                past_key = DecoderModelWriter.PastKey(layer),
                past_value = DecoderModelWriter.PastValue(layer),
                present_key = DecoderModelWriter.PresentKey(layer),
                present_value = DecoderModelWriter.PresentValue(layer),
            },
            method = new { name = "dense", parameters = new { } },
            state = (object?)null,
        }),
        left = Array.Empty<object>(),
    });

    /// <summary>The decoder patched with <paramref name="method"/> in a folder of its own (reused when there).</summary>
    private static string PatchedFolder(string decoder, string method, GenerateBenchSettings settings, TextWriter log)
    {
        var parameters = MethodCatalog.Get(method).Parameters.Select(p => p.Name).ToHashSet();
        var given = settings.Parameters.Where(p => parameters.Contains(p.Key)).ToDictionary(p => p.Key, p => p.Value);
        var folder = Path.Combine(decoder, method + string.Concat(given.OrderBy(p => p.Key).Select(p => string.Create(CultureInfo.InvariantCulture, $"-{p.Key}{p.Value}"))));
        var output = Path.Combine(folder, "model.onnx");
        if (File.Exists(RuntimeConfig.PathBeside(output)))
        {
            return folder;
        }
        log.WriteLine($"bench generate: patching the decoder with {method}");
        var source = ModelFiles.Load(Path.Combine(decoder, DecoderModelWriter.ModelFileName));
        var result = ModelPatcher.Patch(source.Proto, new PatchOptions { Method = new MethodConfig { Method = method, Parameters = given } });
        ModelFiles.SavePatched(source, result, output, verify: null);
        return folder;
    }

    /// <summary>One engine, opened once and measured at every context.</summary>
    private abstract class EngineRunner : IDisposable
    {
        protected EngineRunner(string name) => Name = name;

        public string Name { get; }

        public static EngineRunner Open(string engine, string folder, GenerateBenchSettings settings, int maxLength) => engine == GenAiName
            ? GenAiRunner.Open(folder, settings)
            : new RuntimeRunner(engine, Model.Load(folder, new ModelOptions
            {
                Device = settings.Device,
                IntraOpThreads = settings.Threads,
                MaxLength = maxLength,
                PrefillChunkTokens = settings.PrefillChunkTokens,
                CacheGrowthTokens = settings.CacheGrowthTokens,
            }), settings);

        /// <summary>One generation at <paramref name="context"/>: the row (without the comparison with dense) and the tokens (none when the engine could not run).</summary>
        public abstract (GenerateBenchRow Row, int[][] Tokens) Measure(int context, int[][] prompts);

        public abstract void Dispose();
    }

    private sealed class RuntimeRunner : EngineRunner
    {
        private readonly Model _model;
        private readonly GenerateBenchSettings _settings;

        public RuntimeRunner(string name, Model model, GenerateBenchSettings settings) : base(name)
        {
            _model = model;
            _settings = settings;
            Generate([[.. Enumerable.Range(2, 64)]], 32); // warm-up: kernels, allocator arenas, clocks
        }

        public override (GenerateBenchRow, int[][]) Measure(int context, int[][] prompts)
        {
            int[][] tokens;
            GenerationStats stats;
            try
            {
                (tokens, stats) = Generate(prompts, _settings.NewTokens);
            }
            catch (Microsoft.ML.OnnxRuntime.OnnxRuntimeException e) when (Name == OnnxRuntimeGqa)
            {
                // ONNX Runtime's CUDA GroupQueryAttention takes no prompt in chunks for batches over 1.
                return (new GenerateBenchRow(context, Name, double.NaN, double.NaN, double.NaN, 1, null, e.Message.Split('\n')[0]), []);
            }
            var promptTokens = (double)context * prompts.Length;
            return (new GenerateBenchRow(context, Name, stats.TimeToFirstToken.TotalMilliseconds, promptTokens / stats.TimeToFirstToken.TotalSeconds,
                stats.DecodeTokensPerSecond, stats.CacheReadFraction, null)
            {
                RunShare = stats.RunTime / (stats.PrefillTime + stats.DecodeTime),
            }, tokens);
        }

        private (int[][] Tokens, GenerationStats Stats) Generate(int[][] prompts, int newTokens)
        {
            using var generator = _model.CreateGenerator(new GeneratorSettings { MaxNewTokens = newTokens, StopTokenIds = [] });
            generator.AppendTokenSequences(prompts);
            while (!generator.IsDone)
            {
                generator.GenerateNextToken();
            }
            var tokens = prompts.Select((p, i) => generator.GetSequence(i).Skip(p.Length).ToArray()).ToArray();
            return (tokens, generator.Stats);
        }

        public override void Dispose() => _model.Dispose();
    }

    private sealed class GenAiRunner : EngineRunner
    {
        private readonly GenAiEngine? _engine;
        private readonly string? _problem;
        private readonly int _newTokens;

        private GenAiRunner(GenAiEngine? engine, string? problem, int newTokens) : base(GenAiName)
        {
            _engine = engine;
            _problem = problem;
            _newTokens = newTokens;
        }

        public static GenAiRunner Open(string folder, GenerateBenchSettings settings)
        {
            try
            {
                var engine = GenAiEngine.Open(folder, new GenAiEngineOptions { Device = settings.Device, IntraOpThreads = settings.Threads });
                engine.Generate([[.. Enumerable.Range(2, 64)]], 32); // warm-up
                return new GenAiRunner(engine, null, settings.NewTokens);
            }
            catch (Exception e) when (e is FileNotFoundException or InvalidOperationException or NotSupportedException)
            {
                return new GenAiRunner(null, e.Message, settings.NewTokens);
            }
        }

        public override (GenerateBenchRow, int[][]) Measure(int context, int[][] prompts)
        {
            if (_engine is null)
            {
                return (new GenerateBenchRow(context, Name, double.NaN, double.NaN, double.NaN, 1, null, _problem), []);
            }
            var result = _engine.Generate(prompts, _newTokens);
            return (new GenerateBenchRow(context, Name, result.TimeToFirstToken.TotalMilliseconds,
                (double)context * prompts.Length / result.TimeToFirstToken.TotalSeconds, result.DecodeTokensPerSecond, 1, null), result.Tokens);
        }

        public override void Dispose() => _engine?.Dispose();
    }
}
