using System.Globalization;
using System.Text;
using System.Text.Json;
using OrtSparse.Cli.Bench.Generate;
using OrtSparse.Runtime;
using DataType = Onnx.TensorProto.Types.DataType;

namespace OrtSparse.Cli.Commands;

/// <summary><c>ortsparse bench generate</c>: end-to-end generation against ONNX Runtime GenAI and ONNX Runtime's GroupQueryAttention.</summary>
internal static class BenchGenerateCommand
{
    private const string Usage = """
        usage: ortsparse bench generate [--device cpu|cuda] [--contexts 1024,4096,...] [--new-tokens 64] [--batch 1]
                                        [--methods quest,topk,streaming] [--PARAMETER value ...] [--no-genai]
                                        [--layers L] [--hidden H] [--heads Q] [--kv-heads K] [--head-dim D] [--intermediate I]
                                        [--vocab V] [--dtype fp32|fp16] [--prefill-chunk 2048] [--cache-growth 64] [--threads 0]
                                        [--work DIR] [--csv FILE] [--json]

        Writes a Llama-architecture decoder with seeded random weights in ONNX Runtime GenAI's format
        (GroupQueryAttention with rotary, genai_config.json; reused from --work when there), patches it
        with dense and each method, and generates --new-tokens tokens greedily after a prompt of each
        context with:
          genai             ONNX Runtime GenAI 0.15.2 on its own format (CPU only: the npm package's
                            Linux library has no CUDA support, and its CUDA add-on is not published
                            where this project can fetch it; on cuda the row says so)
          onnxruntime-gqa   the same unpatched model in our runtime: ONNX Runtime's own
                            GroupQueryAttention kernels, our generation loop
          dense, METHOD...  the model patched by 'ortsparse patch --method M' in our runtime
        Per engine and context: time to first token (prompt and first token), prefill tokens/s,
        decode tokens/s after the first token, the share of the KV cache a decode step reads, the
        share of tokens equal to dense's, and decode speed over genai's and onnxruntime-gqa's.

        Defaults: cpu: 2 layers, hidden 256, 4 heads, 2 KV heads of 64, MLP 512, vocabulary 4096,
        fp32, contexts 1024,4096. cuda: 4 layers, hidden 2048, 16 heads, 8 KV heads of 128, MLP 4096,
        vocabulary 32000, fp16, contexts 1024,4096,16384,65536,131072. Method parameters default to
        the op's (budget 1/16 of the cache, dense below 1024 keys). Our runtime sizes its cache for the
        prompt and the new tokens, rounded up to --cache-growth (64, as GenAI sizes its buffer to
        max_length = prompt + new tokens here: ONNX Runtime's GroupQueryAttention works on the whole buffer).
        --csv FILE appends rows (device,batch,context,engine,ttft_ms,prefill_tokens_per_s,
        decode_tokens_per_s,cache_read,same_as_dense).
        """;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var line = CommandLine.Parse(args,
            ["--device", "--contexts", "--new-tokens", "--batch", "--methods", "--layers", "--hidden", "--heads", "--kv-heads", "--head-dim",
             "--intermediate", "--vocab", "--dtype", "--prefill-chunk", "--cache-growth", "--threads", "--work", "--csv", "--seed", .. MethodOptions.Names.Where(n => n != "--method")],
            ["--no-genai", "--json", "--help", "-h"]);
        if (line.Flag("--help") || line.Flag("-h"))
        {
            stdout.WriteLine(Usage);
            return CliApp.Ok;
        }
        var device = DeviceOption.Parse(line.Option("--device"));
        var cuda = device == ExecutionDevice.Cuda;
        var dtype = line.Option("--dtype") ?? (cuda ? "fp16" : "fp32");
        var shape = new DecoderShape
        {
            Layers = line.Int("--layers", cuda ? 4 : 2, min: 1),
            Hidden = line.Int("--hidden", cuda ? 2048 : 256, min: 1),
            Heads = line.Int("--heads", cuda ? 16 : 4, min: 1),
            KvHeads = line.Int("--kv-heads", cuda ? 8 : 2, min: 1),
            HeadSize = line.Int("--head-dim", cuda ? 128 : 64, min: 1),
            Intermediate = line.Int("--intermediate", cuda ? 4096 : 512, min: 1),
            Vocab = line.Int("--vocab", cuda ? 32000 : 4096, min: 2),
            ElementType = dtype switch
            {
                "fp32" => DataType.Float,
                "fp16" => DataType.Float16,
                _ => throw new UsageException($"--dtype is fp32 or fp16, got '{dtype}'"),
            },
            Seed = line.Int("--seed", 1),
        };
        var contexts = (line.Option("--contexts") ?? (cuda ? "1024,4096,16384,65536,131072" : "1024,4096")).Split(',')
            .Select(c => int.TryParse(c, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : throw new UsageException($"--contexts: '{c}' is not a positive length"))
            .ToList();
        var methods = (line.Option("--methods") ?? "quest,topk,streaming").Split(',', StringSplitOptions.RemoveEmptyEntries).ToList();
        foreach (var method in methods)
        {
            try
            {
                if (GraphRewriter.MethodCatalog.Get(method).NeedsCalibration)
                {
                    throw new UsageException($"--methods: {method} needs a calibration of the model; bench generate's random decoder has none");
                }
            }
            catch (ArgumentException e)
            {
                throw new UsageException($"--methods: {e.Message}");
            }
        }
        var settings = new GenerateBenchSettings
        {
            Device = device,
            Shape = shape,
            Contexts = contexts,
            NewTokens = line.Int("--new-tokens", 64, min: 2),
            Batch = line.Int("--batch", 1, min: 1),
            Methods = methods,
            Parameters = MethodOptions.SharedParameters(line),
            GenAi = !line.Flag("--no-genai"),
            PrefillChunkTokens = line.Int("--prefill-chunk", 2048, min: 1),
            CacheGrowthTokens = line.Int("--cache-growth", 64, min: 1),
            Threads = line.Int("--threads", 0, min: 0),
            WorkFolder = line.Option("--work") ?? Path.Combine("out", "bench-generate"),
        };
        var rows = GenerateBenchmark.Run(settings, stderr);
        if (line.Option("--csv") is { } csv)
        {
            AppendCsv(csv, DeviceOption.Name(device), settings.Batch, rows);
        }
        if (line.Flag("--json"))
        {
            stdout.WriteLine(JsonSerializer.Serialize(rows, new JsonSerializerOptions { WriteIndented = true }));
            return CliApp.Ok;
        }
        WriteTable(stdout, settings, rows);
        return CliApp.Ok;
    }

    private static void WriteTable(TextWriter stdout, GenerateBenchSettings settings, IReadOnlyList<GenerateBenchRow> rows)
    {
        var s = settings.Shape;
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"decoder: {s.Layers} layers, hidden {s.Hidden}, {s.Heads} heads, {s.KvHeads} KV heads of {s.HeadSize}, MLP {s.Intermediate}, vocabulary {s.Vocab}, " +
            $"{(s.ElementSize == 2 ? "fp16" : "fp32")}, {s.ParameterCount / 1e6:F0} M parameters; {DeviceOption.Name(settings.Device)}, batch {settings.Batch}, {settings.NewTokens} new tokens"));
        string Number(double value, string format) => double.IsFinite(value) ? value.ToString(format, CultureInfo.InvariantCulture) : "-";
        string Ratio(double value, double baseline) => double.IsFinite(value / baseline) ? Number(value / baseline, "F2") + "x" : "-";
        foreach (var context in settings.Contexts)
        {
            var here = rows.Where(r => r.Context == context).ToList();
            var genai = here.FirstOrDefault(r => r.Engine == GenerateBenchmark.GenAiName && r.Problem is null)?.DecodeTokensPerSecond;
            var gqa = here.First(r => r.Engine == GenerateBenchmark.OnnxRuntimeGqa).DecodeTokensPerSecond;
            var dense = here.First(r => r.Engine == "dense").DecodeTokensPerSecond;
            stdout.WriteLine();
            stdout.WriteLine($"context {context}");
            Table.Write(stdout, ["engine", "ttft ms", "prefill tok/s", "decode tok/s", "cache read", "same as dense", "in ORT run", "decode / genai", "decode / ort-gqa", "decode / dense"],
                here.Select(r => new[]
                {
                    r.Engine, Number(r.TimeToFirstTokenMs, "F1"), Number(r.PrefillTokensPerSecond, "F0"), Number(r.DecodeTokensPerSecond, "F1"),
                    Number(100 * r.CacheRead, "F1") + "%", r.SameAsDense is { } same ? Number(100 * same, "F0") + "%" : "-",
                    r.RunShare is { } share ? Number(100 * share, "F0") + "%" : "-",
                    Ratio(r.DecodeTokensPerSecond, genai ?? double.NaN), Ratio(r.DecodeTokensPerSecond, gqa), Ratio(r.DecodeTokensPerSecond, dense),
                }).ToList());
            foreach (var row in here.Where(r => r.Problem is not null))
            {
                stdout.WriteLine($"  {row.Engine}: {row.Problem}");
            }
        }
    }

    private static void AppendCsv(string path, string device, int batch, IReadOnlyList<GenerateBenchRow> rows)
    {
        var text = new StringBuilder();
        if (!File.Exists(path))
        {
            text.Append("device,batch,context,engine,ttft_ms,prefill_tokens_per_s,decode_tokens_per_s,cache_read,same_as_dense\n");
        }
        string Number(double? value) => value is { } v && double.IsFinite(v) ? v.ToString("G6", CultureInfo.InvariantCulture) : "";
        foreach (var r in rows)
        {
            text.Append(CultureInfo.InvariantCulture,
                $"{device},{batch},{r.Context},{r.Engine},{Number(r.TimeToFirstTokenMs)},{Number(r.PrefillTokensPerSecond)},{Number(r.DecodeTokensPerSecond)},{Number(r.CacheRead)},{Number(r.SameAsDense)}\n");
        }
        File.AppendAllText(path, text.ToString());
    }
}
