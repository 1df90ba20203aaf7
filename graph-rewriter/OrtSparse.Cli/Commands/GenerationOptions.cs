using System.Globalization;
using OrtSparse.Runtime.Generation;
using OrtSparse.Runtime.Sampling;

namespace OrtSparse.Cli.Commands;

/// <summary>The options <c>generate</c>, <c>chat</c> and <c>bench generate</c> share: how to load the model and how to sample.</summary>
internal static class GenerationOptions
{
    public static readonly string[] Names =
    [
        "--device", "--threads", "--max-length", "--cache-growth", "--prefill-chunk", "--method", "--budget", "--sink", "--window", "--dense-below",
        "--max-new", "--temperature", "--top-k", "--top-p", "--min-p", "--repetition-penalty", "--seed", "--stop",
    ];

    public const string Help = """
          --device cpu|cuda    where the model runs (default cpu; cuda needs ./build.sh --gpu)
          --threads N          CPU threads (default: one per core)
          --max-length N       most tokens a sequence holds (default: the model's limit)
          --cache-growth N     the KV cache grows by N tokens at a time (default 1024)
          --prefill-chunk N    prompts run N tokens at a time (default 512)
          --method M           run every layer with M instead of its patched method, where the model allows
                               (dense, topk, streaming; or the patched method with other parameters)
          --budget F, --sink N, --window N, --dense-below N   the selection parameters of every layer
          --max-new N          tokens to generate (default 256)
          --temperature T      0 = greedy (default); else sample with --top-k K, --top-p P, --min-p P
          --repetition-penalty R, --seed S
          --stop TEXT          stop before TEXT (repeat for several); the tokenizer's end token always stops
        """;

    public static ModelOptions ModelOptionsFrom(CommandLine line)
    {
        var parameters = new Dictionary<string, double>();
        foreach (var (option, name) in new[] { ("--budget", "budget"), ("--sink", "sink"), ("--window", "window"), ("--dense-below", "dense_below") })
        {
            if (line.Option(option) is not null)
            {
                parameters[name] = line.Double(option, 0);
            }
        }
        return new ModelOptions
        {
            Device = DeviceOption.Parse(line.Option("--device")),
            IntraOpThreads = line.Int("--threads", 0, min: 0),
            MaxLength = line.Option("--max-length") is null ? null : line.Int("--max-length", 0, min: 2),
            CacheGrowthTokens = line.Int("--cache-growth", 1024, min: 1),
            PrefillChunkTokens = line.Int("--prefill-chunk", 512, min: 1),
            Method = line.Option("--method"),
            MethodParameters = parameters.Count > 0 ? parameters : null,
        };
    }

    public static GeneratorSettings SettingsFrom(CommandLine line, int defaultMaxNew = 256) => new()
    {
        MaxNewTokens = line.Int("--max-new", defaultMaxNew, min: 1),
        StopStrings = line.Options("--stop"),
        Sampling = new SamplingOptions
        {
            Temperature = line.Double("--temperature", 0),
            TopK = line.Int("--top-k", 0, min: 0),
            TopP = line.Double("--top-p", 1),
            MinP = line.Double("--min-p", 0),
            RepetitionPenalty = line.Double("--repetition-penalty", 1),
            Seed = line.Option("--seed") is { } seed
                ? long.TryParse(seed, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) ? value : throw new UsageException($"--seed expects an integer, got '{seed}'")
                : null,
        },
    };

    /// <summary>The closing numbers of a generation: time to first token, prefill and decode speed, cache read.</summary>
    public static string Summary(GenerationStats stats, ModelConfig config)
    {
        var methods = string.Join(", ", config.Layers.Select(l => l.Method).Distinct());
        return string.Create(CultureInfo.InvariantCulture,
            $"prompt {stats.PromptTokens} tokens, generated {stats.GeneratedTokens}; time to first token {stats.TimeToFirstToken.TotalMilliseconds:F1} ms, " +
            $"prefill {stats.PrefillTokensPerSecond:F0} tokens/s, decode {stats.DecodeTokensPerSecond:F1} tokens/s, " +
            $"KV cache read {100 * stats.CacheReadFraction:F1}% per step ({methods}; from the selection rule)");
    }
}
