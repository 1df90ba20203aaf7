using System.Globalization;
using System.Text.Json;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Onnx;
using OrtSparse.Calibration;
using OrtSparse.Cli.Bench;
using OrtSparse.GraphRewriter;
using OrtSparse.Runtime;

namespace OrtSparse.Cli.Commands;

/// <summary>
/// <c>ortsparse bench attention</c>: one decode step of one attention layer for dense and each
/// sparse method on identical inputs in the same run; or, with --compare-onnxruntime, dense next to
/// ONNX Runtime's own Attention kernel.
/// </summary>
internal static class BenchCommand
{
    private const string Usage = """
        usage: ortsparse bench attention [--context 32768] [--batch 1] [--heads 32] [--kv-heads 8] [--head-dim 128]
                                         [--cache CACHE --layer 0]
                                         [--dtype fp32|fp16] [--methods topk,streaming,loki,quest,saap,hash]
                                         [--budget 0.0625] [--needles 8] [--steps 10] [--warmup 2] [--threads 0]
                                         [--seed 0] [--json] [--compare-onnxruntime]

        One decode step (one new token against a cache of CONTEXT-1 tokens) on synthetic inputs with
        low-rank keys and NEEDLES planted keys per KV head that dominate the query's attention, or,
        with --cache, on the last token of a sequence saved by 'ortsparse capture' (its layer
        LAYER; the shape comes from the file, batch 1, no needles). The KV cache and method state
        are bound in place, as a generation loop binds them. Dense runs first as the baseline. Per
        method: median time, speed-up over dense, bytes of KV and state read, recall (exact softmax
        mass of the attended keys), needles found, relative output error against dense, and overlap
        (Jaccard) with topk's selection. Calibration comes from the cache itself: PCA bases (loki),
        k-means centroids with a centroid-ranking classifier (saap), seeded projections (hash).
        --threads 0 leaves the thread count to ONNX Runtime (its physical-core count).

        --compare-onnxruntime times instead, on the same inputs:
          onnxruntime-attention  ONNX Runtime's own CPU kernel for ONNX Attention-23 (concatenates past and new KV)
          ortsparse-concat       the same model patched by 'ortsparse patch --method dense' (same semantics)
          ortsparse-inplace      SparseAttention with seqlens_k and past/present bound to one buffer (no copy)
        """;

    private sealed record Row(string Name, double MedianMs, double MeanMs, double? SpeedupVsBaseline, double? MaxAbsDiffVsBaseline, string? Note);

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Length == 0 || args[0] != "attention")
        {
            if (args.Length > 0 && args[0] is "--help" or "-h")
            {
                stdout.WriteLine(Usage);
                return CliApp.Ok;
            }
            throw new UsageException("bench needs a subject: attention");
        }
        var line = CommandLine.Parse(args[1..],
            ["--context", "--batch", "--heads", "--kv-heads", "--head-dim", "--dtype", "--steps", "--warmup", "--threads", "--device", "--methods", "--budget", "--needles", "--seed",
             "--cache", "--layer"],
            ["--json", "--compare-onnxruntime", "--help", "-h"]);
        if (line.Flag("--help") || line.Flag("-h"))
        {
            stdout.WriteLine(Usage);
            return CliApp.Ok;
        }
        var dtype = line.Option("--dtype") ?? "fp32";
        var settings = new AttentionBenchSettings
        {
            Context = line.Int("--context", 32768, 2, 1 << 24),
            Batch = line.Int("--batch", 1, 1, 4096),
            Heads = line.Int("--heads", 32, 1, 4096),
            KvHeads = line.Int("--kv-heads", 8, 1, 4096),
            HeadDim = line.Int("--head-dim", 128, 1, 1024),
            ElementType = dtype switch
            {
                "fp32" => TensorProto.Types.DataType.Float,
                "fp16" => TensorProto.Types.DataType.Float16,
                _ => throw new UsageException($"unknown dtype '{dtype}' (fp32, fp16)"),
            },
            Methods = (line.Option("--methods") ?? "topk,streaming,loki,quest,saap,hash").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            Budget = line.Double("--budget", 0.0625),
            Needles = line.Int("--needles", 8, 0, 1 << 20),
            Steps = line.Int("--steps", 10, 1, 100000),
            Warmup = line.Int("--warmup", 2, 0, 100000),
            Threads = line.Int("--threads", 0, 0, 1024),
            Seed = line.Int("--seed", 0),
        };
        BenchCache? captured = null;
        if (line.Option("--cache") is { } cachePath)
        {
            if (new[] { "--context", "--batch", "--heads", "--kv-heads", "--head-dim", "--needles" }.FirstOrDefault(o => line.Option(o) is not null) is { } shapeOption)
            {
                throw new UsageException($"{shapeOption} does not go with --cache: the captured cache has its own shape");
            }
            if (line.Flag("--compare-onnxruntime"))
            {
                throw new UsageException("--compare-onnxruntime runs on synthetic inputs; it does not take --cache");
            }
            var layer = line.Int("--layer", 0, 0, 1 << 20);
            var data = CalibrationData.Load(cachePath);
            if (data.GetMetadata(CaptureCommand.MarkerKey) is null)
            {
                throw new UsageException($"--cache: {cachePath} was not written by 'ortsparse capture'");
            }
            captured = BenchCache.FromCapture(data, layer);
            settings = settings with
            {
                Batch = 1, Context = captured.Context, Heads = captured.Heads, KvHeads = captured.KvHeads, HeadDim = captured.HeadDim, Needles = 0,
            };
        }
        else if (line.Option("--layer") is not null)
        {
            throw new UsageException("--layer picks a layer of --cache CACHE");
        }
        if (settings.Heads % settings.KvHeads != 0)
        {
            throw new UsageException($"--heads ({settings.Heads}) must be a multiple of --kv-heads ({settings.KvHeads})");
        }
        if (settings.Budget <= 0)
        {
            throw new UsageException($"--budget ({settings.Budget}) must be positive");
        }
        foreach (var method in settings.Methods)
        {
            try
            {
                MethodCatalog.Get(method);
            }
            catch (ArgumentException e)
            {
                throw new UsageException(e.Message);
            }
            if (method is "block")
            {
                throw new UsageException("bench attention times decode steps; 'block' is a prefill method");
            }
        }
        if (DeviceOption.Parse(line.Option("--device")) != ExecutionDevice.Cpu)
        {
            throw new UsageException("bench attention runs on cpu for now; CUDA kernels land with the CUDA issue");
        }

        if (line.Flag("--compare-onnxruntime"))
        {
            CompareWithOnnxRuntime(settings, stdout, line.Flag("--json"));
            return CliApp.Ok;
        }
        var cache = captured ?? BenchCache.Synthetic(settings.Batch, settings.Context, settings.Heads, settings.KvHeads, settings.HeadDim, settings.Needles, settings.Seed);
        var results = AttentionBenchmark.Run(settings, cache, stderr);
        if (line.Flag("--json"))
        {
            stdout.WriteLine(JsonSerializer.Serialize(results.Select(r => new Dictionary<string, object?>
            {
                ["method"] = r.Method, ["context"] = settings.Context, ["batch"] = settings.Batch, ["heads"] = settings.Heads,
                ["kv_heads"] = settings.KvHeads, ["head_dim"] = settings.HeadDim, ["dtype"] = dtype, ["budget"] = settings.Budget,
                ["median_ms"] = r.MedianMs, ["speedup_vs_dense"] = r.SpeedupVsDense, ["bytes_read"] = r.BytesRead,
                ["recall"] = r.Recall, ["needle_recall"] = r.NeedleRecall, ["relative_error"] = r.RelativeError, ["topk_overlap"] = r.TopkOverlap,
            }), new JsonSerializerOptions { WriteIndented = true }));
            return CliApp.Ok;
        }
        var inputs = captured is null ? $"{settings.Needles} needles per KV head" : $"captured cache {line.Option("--cache")} layer {line.Int("--layer", 0)}";
        var threads = settings.Threads == 0 ? "default threads" : $"{settings.Threads} threads";
        stdout.WriteLine($"decode step, context {settings.Context}, batch {settings.Batch}, {settings.Heads}/{settings.KvHeads} heads, D {settings.HeadDim}, {dtype}, " +
                         $"budget {settings.Budget.ToString(CultureInfo.InvariantCulture)}, {inputs}, {threads}, median of {settings.Steps} steps");
        var denseBytes = results[0].BytesRead;
        Table.Write(stdout, ["method", "median ms", "vs dense", "MiB read", "of dense", "recall", "needles", "rel error", "topk overlap"], results.Select(r => new[]
        {
            r.Method, Ms(r.MedianMs), r.SpeedupVsDense.ToString("0.00", CultureInfo.InvariantCulture) + "x",
            (r.BytesRead / (1 << 20)).ToString("0.0", CultureInfo.InvariantCulture), (r.BytesRead / denseBytes).ToString("0.000", CultureInfo.InvariantCulture),
            r.Recall.ToString("0.000", CultureInfo.InvariantCulture), r.NeedleRecall?.ToString("0.00", CultureInfo.InvariantCulture) ?? "-",
            r.RelativeError.ToString("0.0e+0", CultureInfo.InvariantCulture), r.TopkOverlap?.ToString("0.000", CultureInfo.InvariantCulture) ?? "-",
        }).ToList());
        return CliApp.Ok;
    }

    /// <summary>Dense decode next to ONNX Runtime's own Attention kernel (<c>--compare-onnxruntime</c>).</summary>
    private static void CompareWithOnnxRuntime(AttentionBenchSettings settings, TextWriter stdout, bool json)
    {
        var benchCase = new AttentionCase
        {
            Batch = settings.Batch, QueryLength = 1, PastLength = settings.Context - 1, NumHeads = settings.Heads,
            KvNumHeads = settings.KvHeads, HeadDim = settings.HeadDim, IsCausal = true, ElementType = settings.ElementType,
        };
        var config = new SessionConfig { IntraOpThreads = settings.Threads };
        var (steps, warmup, context, dtype) = (settings.Steps, settings.Warmup, settings.Context, settings.ElementType == TensorProto.Types.DataType.Float16 ? "fp16" : "fp32");
        var original = benchCase.BuildModel();
        var patched = ModelPatcher.Patch(original).Model;
        var inputs = benchCase.CreateInputs(seed: 1234);
        var rows = new List<Row>();
        try
        {
            var (baselineMs, baselineOutput, baselineError) = TimeModel(original, inputs, config, steps, warmup);
            var (concatMs, concatOutput, _) = TimeModel(patched, inputs, config, steps, warmup, required: true);
            var (inplaceMs, inplaceOutput) = TimeInPlace(benchCase, inputs, config, steps, warmup);
            double? Speedup(double[] ms) => baselineMs is null ? null : DecodeStep.Median(baselineMs) / DecodeStep.Median(ms);
            double? Diff(double[] output) => baselineOutput is null ? null : baselineOutput.Zip(output, (a, b) => Math.Abs(a - b)).Max();
            rows.Add(baselineMs is null
                ? new Row("onnxruntime-attention", double.NaN, double.NaN, null, null, baselineError)
                : new Row("onnxruntime-attention", DecodeStep.Median(baselineMs), baselineMs.Average(), 1.0, 0.0, null));
            rows.Add(new Row("ortsparse-concat", DecodeStep.Median(concatMs!), concatMs!.Average(), Speedup(concatMs!), Diff(concatOutput!), null));
            rows.Add(new Row("ortsparse-inplace", DecodeStep.Median(inplaceMs), inplaceMs.Average(), Speedup(inplaceMs), Diff(inplaceOutput), null));
        }
        finally
        {
            foreach (var value in inputs.Values)
            {
                value.Dispose();
            }
        }

        if (json)
        {
            var objects = rows.Select(r => new Dictionary<string, object?>
            {
                ["name"] = r.Name, ["context"] = context, ["batch"] = benchCase.Batch, ["heads"] = benchCase.NumHeads,
                ["kv_heads"] = benchCase.KvNumHeads, ["head_dim"] = benchCase.HeadDim, ["dtype"] = dtype,
                ["median_ms"] = double.IsNaN(r.MedianMs) ? null : r.MedianMs, ["mean_ms"] = double.IsNaN(r.MeanMs) ? null : r.MeanMs,
                ["speedup_vs_baseline"] = r.SpeedupVsBaseline, ["max_abs_diff_vs_baseline"] = r.MaxAbsDiffVsBaseline, ["note"] = r.Note,
            });
            stdout.WriteLine(JsonSerializer.Serialize(objects, new JsonSerializerOptions { WriteIndented = true }));
            return;
        }
        stdout.WriteLine($"decode step, context {context}, batch {benchCase.Batch}, {benchCase.NumHeads}/{benchCase.KvNumHeads} heads, D {benchCase.HeadDim}, {dtype}, " +
                         $"{(config.IntraOpThreads == 0 ? "default" : config.IntraOpThreads.ToString(CultureInfo.InvariantCulture))} threads, median of {steps} steps");
        Table.Write(stdout, ["kernel", "median ms", "mean ms", "speed-up", "max |diff|"], rows.Select(r => new[]
        {
            r.Name, Ms(r.MedianMs), Ms(r.MeanMs),
            r.SpeedupVsBaseline is { } s ? s.ToString("0.00", CultureInfo.InvariantCulture) + "x" : "-",
            r.MaxAbsDiffVsBaseline is { } d ? d.ToString("0.0e+0", CultureInfo.InvariantCulture) : (r.Note ?? "-"),
        }).ToList());
    }

    private static (double[]? Ms, double[]? Output, string? Error) TimeModel(ModelProto model, Dictionary<string, OrtValue> inputs, SessionConfig config, int steps, int warmup, bool required = false)
    {
        InferenceSession session;
        try
        {
            using var options = SessionFactory.CreateOptions(config);
            session = new InferenceSession(model.ToByteArray(), options);
        }
        catch (OnnxRuntimeException e) when (!required)
        {
            return (null, null, $"n/a: {e.Message.Split('\n')[0]}");
        }
        using (session)
        {
            var names = session.InputNames.ToArray();
            var values = names.Select(n => inputs[n]).ToArray();
            using var runOptions = new RunOptions();
            double[]? output = null;
            var times = DecodeStep.Time(warmup, steps, () =>
            {
                using var outputs = session.Run(runOptions, names, values, session.OutputNames);
                output ??= TensorValues.ToDoubles(outputs.First());
            });
            return (times, output, null);
        }
    }

    /// <summary>Times SparseAttention in its decode mode: seqlens_k given, past and present bound to the same buffers.</summary>
    private static (double[] Ms, double[] Output) TimeInPlace(AttentionCase benchCase, Dictionary<string, OrtValue> inputs, SessionConfig config, int steps, int warmup)
    {
        var capacity = benchCase.PastLength + 1;
        var model = InPlaceModel(benchCase, capacity);
        using var options = SessionFactory.CreateOptions(config);
        using var session = new InferenceSession(model.ToByteArray(), options);
        // The shared cache holds the same past as the other rows, plus one free slot for the new token.
        using var keyCache = WithFreeSlot(inputs["past_key"], benchCase, benchCase.HeadDim);
        using var valueCache = WithFreeSlot(inputs["past_value"], benchCase, benchCase.HeadDim);
        using var seqlens = OrtValue.CreateTensorValueFromMemory(Enumerable.Repeat(capacity - 1, benchCase.Batch).ToArray(), [benchCase.Batch]);
        using var total = OrtValue.CreateTensorValueFromMemory(new[] { capacity }, []);
        var outputShape = new long[] { benchCase.Batch, 1, benchCase.NumHeads * benchCase.HeadDim };
        using var output = benchCase.ElementType == TensorProto.Types.DataType.Float16
            ? OrtValue.CreateTensorValueFromMemory(new Float16[outputShape.Aggregate(1L, (a, d) => a * d)], outputShape)
            : OrtValue.CreateTensorValueFromMemory(new float[outputShape.Aggregate(1L, (a, d) => a * d)], outputShape);
        using var binding = session.CreateIoBinding();
        DecodeStep.Bind(binding, inputs["query"], inputs["key"], inputs["value"], keyCache, valueCache, seqlens, total, output);
        using var runOptions = new RunOptions();
        var times = DecodeStep.Time(warmup, steps, () => session.RunWithBinding(runOptions, binding));
        return (times, TensorValues.ToDoubles(output));
    }

    private static OrtValue WithFreeSlot(OrtValue past, AttentionCase benchCase, int headDim)
    {
        var shape = new long[] { benchCase.Batch, benchCase.KvNumHeads, benchCase.PastLength + 1, headDim };
        var type = past.GetTensorTypeAndShape().ElementDataType;
        var cache = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, type, shape);
        var source = past.GetTensorMutableRawData();
        var target = cache.GetTensorMutableRawData();
        target.Clear();
        var rowBytes = source.Length / (benchCase.Batch * benchCase.KvNumHeads);
        var slotBytes = target.Length / (benchCase.Batch * benchCase.KvNumHeads);
        for (var head = 0; head < benchCase.Batch * benchCase.KvNumHeads; head++)
        {
            source.Slice(head * rowBytes, rowBytes).CopyTo(target.Slice(head * slotBytes));
        }
        return cache;
    }

    private static ModelProto InPlaceModel(AttentionCase benchCase, int capacity)
    {
        var type = benchCase.ElementType;
        int b = benchCase.Batch, hq = benchCase.NumHeads, hkv = benchCase.KvNumHeads, d = benchCase.HeadDim;
        var graph = new GraphProto { Name = "sparse_attention_inplace" };
        graph.Input.Add(AttentionCase.ValueInfo("query", type, [b, 1, hq * d]));
        graph.Input.Add(AttentionCase.ValueInfo("key", type, [b, 1, hkv * d]));
        graph.Input.Add(AttentionCase.ValueInfo("value", type, [b, 1, hkv * d]));
        graph.Input.Add(AttentionCase.ValueInfo("past_key", type, [b, hkv, capacity, d]));
        graph.Input.Add(AttentionCase.ValueInfo("past_value", type, [b, hkv, capacity, d]));
        graph.Input.Add(AttentionCase.ValueInfo("seqlens_k", TensorProto.Types.DataType.Int32, [b]));
        graph.Input.Add(AttentionCase.ValueInfo("total_sequence_length", TensorProto.Types.DataType.Int32, []));
        graph.Output.Add(AttentionCase.ValueInfo("output", type, [b, 1, hq * d]));
        graph.Output.Add(AttentionCase.ValueInfo("present_key", type, [b, hkv, capacity, d]));
        graph.Output.Add(AttentionCase.ValueInfo("present_value", type, [b, hkv, capacity, d]));
        var node = new NodeProto { OpType = SparseAttentionOp.OpType, Domain = SparseAttentionOp.Domain, Name = "attention" };
        node.Input.Add(["query", "key", "value", "past_key", "past_value", "seqlens_k", "total_sequence_length"]);
        node.Output.Add(["output", "present_key", "present_value"]);
        node.Attribute.Add(new AttributeProto { Name = "num_heads", Type = AttributeProto.Types.AttributeType.Int, I = hq });
        node.Attribute.Add(new AttributeProto { Name = "kv_num_heads", Type = AttributeProto.Types.AttributeType.Int, I = hkv });
        graph.Node.Add(node);
        var model = new ModelProto { IrVersion = 10, ProducerName = "ortsparse-bench", Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 23 });
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = SparseAttentionOp.Domain, Version = SparseAttentionOp.DomainVersion });
        return model;
    }

    private static string Ms(double value) => double.IsNaN(value) ? "-" : value.ToString("0.000", CultureInfo.InvariantCulture);
}
