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
/// sparse method on identical inputs in the same run, on the CPU or with every tensor in GPU memory;
/// with --compare-onnxruntime, next to ONNX Runtime's own kernel.
/// </summary>
internal static class BenchCommand
{
    private const string Usage = """
        usage: ortsparse bench attention [--device cpu|cuda] [--context 32768] [--batch 1] [--heads 32] [--kv-heads 8] [--head-dim 128]
                                         [--cache CACHE --layer 0]
                                         [--dtype fp32|fp16|bf16] [--methods topk,streaming,loki,quest,saap,hash]
                                         [--budget 0.0625] [--needles 8] [--steps 10] [--warmup 2] [--threads 0]
                                         [--seed 0] [--json] [--csv FILE] [--compare-onnxruntime]

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

        --device cuda runs the steps on ONNX Runtime's CUDA provider with the inputs, the cache, the
        method state and the output in GPU memory (only total_sequence_length, which the kernel
        reads on the host, stays there); the dtype defaults to fp16 there (fp32, fp16, bf16; the
        CPU takes fp32 and fp16), and the head size must be 64, 80, 96 or 128. Each timed step
        ends when the GPU has finished it.

        --csv FILE appends one row per kernel (device,batch,context,method,ms,bytes_read,recall,
        rel_error) to FILE, creating it with that header, so that several runs can be plotted.

        --compare-onnxruntime, on cuda: also times ONNX Runtime's com.microsoft.GroupQueryAttention
          (the kernel ONNX Runtime GenAI decodes with) on the same inputs, bound to the same cache as
          its shared past/present buffer, and reports each method's speed-up over it and its
          output's difference from dense.
        --compare-onnxruntime, on cpu: times instead, on synthetic inputs:
          onnxruntime-attention  ONNX Runtime's own CPU kernel for ONNX Attention-23 (concatenates past and new KV)
          ortsparse-concat       the same model patched by 'ortsparse patch --method dense' (same semantics)
          ortsparse-inplace      SparseAttention with seqlens_k and past/present bound to one buffer (no copy)
        """;

    private const string GroupQueryAttentionName = "onnxruntime-gqa";

    private static readonly int[] CudaHeadSizes = [64, 80, 96, 128];

    private sealed record Row(string Name, double MedianMs, double MeanMs, double? SpeedupVsBaseline, double? MaxAbsDiffVsBaseline, string? Note);

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Length > 0 && args[0] == "generate")
        {
            return BenchGenerateCommand.Run(args[1..], stdout, stderr);
        }
        if (args.Length > 0 && args[0] == "fidelity")
        {
            return BenchFidelityCommand.Run(args[1..], stdout, stderr);
        }
        if (args.Length == 0 || args[0] != "attention")
        {
            if (args.Length > 0 && args[0] is "--help" or "-h")
            {
                stdout.WriteLine(Usage);
                return CliApp.Ok;
            }
            throw new UsageException("bench needs a subject: attention, generate or fidelity");
        }
        var line = CommandLine.Parse(args[1..],
            ["--context", "--batch", "--heads", "--kv-heads", "--head-dim", "--dtype", "--steps", "--warmup", "--threads", "--device", "--methods", "--budget", "--needles", "--seed",
             "--cache", "--layer", "--csv"],
            ["--json", "--compare-onnxruntime", "--help", "-h"]);
        if (line.Flag("--help") || line.Flag("-h"))
        {
            stdout.WriteLine(Usage);
            return CliApp.Ok;
        }
        var device = DeviceOption.Parse(line.Option("--device"));
        var compare = line.Flag("--compare-onnxruntime");
        var dtype = line.Option("--dtype") ?? (device == ExecutionDevice.Cuda ? "fp16" : "fp32");
        var settings = new AttentionBenchSettings
        {
            Device = device,
            Context = line.Int("--context", 32768, 2, 1 << 24),
            Batch = line.Int("--batch", 1, 1, 4096),
            Heads = line.Int("--heads", 32, 1, 4096),
            KvHeads = line.Int("--kv-heads", 8, 1, 4096),
            HeadDim = line.Int("--head-dim", 128, 1, 1024),
            ElementType = dtype switch
            {
                "fp32" => TensorProto.Types.DataType.Float,
                "fp16" => TensorProto.Types.DataType.Float16,
                "bf16" when device == ExecutionDevice.Cuda => TensorProto.Types.DataType.Bfloat16,
                "bf16" => throw new UsageException("--dtype bf16 needs --device cuda (the CPU kernels take fp32 and fp16)"),
                _ => throw new UsageException($"unknown dtype '{dtype}' (fp32, fp16, bf16)"),
            },
            Methods = (line.Option("--methods") ?? "topk,streaming,loki,quest,saap,hash").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            Budget = line.Double("--budget", 0.0625),
            Needles = line.Int("--needles", 8, 0, 1 << 20),
            Steps = line.Int("--steps", 10, 1, 100000),
            Warmup = line.Int("--warmup", 2, 0, 100000),
            Threads = line.Int("--threads", 0, 0, 1024),
            Seed = line.Int("--seed", 0),
            CompareGroupQueryAttention = compare && device == ExecutionDevice.Cuda,
        };
        BenchCache? captured = null;
        if (line.Option("--cache") is { } cachePath)
        {
            if (new[] { "--context", "--batch", "--heads", "--kv-heads", "--head-dim", "--needles" }.FirstOrDefault(o => line.Option(o) is not null) is { } shapeOption)
            {
                throw new UsageException($"{shapeOption} does not go with --cache: the captured cache has its own shape");
            }
            if (compare && device == ExecutionDevice.Cpu)
            {
                throw new UsageException("--compare-onnxruntime on cpu runs on synthetic inputs; it does not take --cache");
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
        if (device == ExecutionDevice.Cuda && !CudaHeadSizes.Contains(settings.HeadDim))
        {
            throw new UsageException($"--device cuda: the CUDA kernels take head sizes {string.Join(", ", CudaHeadSizes)}; the head size is {settings.HeadDim}");
        }
        var csvPath = line.Option("--csv");

        if (compare && device == ExecutionDevice.Cpu)
        {
            CompareWithOnnxRuntime(settings, stdout, line.Flag("--json"), csvPath);
            return CliApp.Ok;
        }
        try
        {
            AttentionBenchmark.CheckDevice(device);  // a missing provider or GPU fails now, before the inputs are drawn
        }
        catch (Exception e) when (e is FileNotFoundException or InvalidOperationException)
        {
            throw new InvalidOperationException($"--device {DeviceOption.Name(device)}: {e.Message}", e);
        }
        var cache = captured ?? BenchCache.Synthetic(settings.Batch, settings.Context, settings.Heads, settings.KvHeads, settings.HeadDim, settings.Needles, settings.Seed);
        var report = AttentionBenchmark.Run(settings, cache, stderr);
        if (csvPath is not null)
        {
            BenchCsv.Append(csvPath, CsvRows(settings, report));
        }
        if (line.Flag("--json"))
        {
            WriteJson(stdout, settings, dtype, report);
            return CliApp.Ok;
        }
        var inputs = captured is null ? $"{settings.Needles} needles per KV head" : $"captured cache {line.Option("--cache")} layer {line.Int("--layer", 0)}";
        var where = device == ExecutionDevice.Cuda ? "cuda" : settings.Threads == 0 ? "cpu, default threads" : $"cpu, {settings.Threads} threads";
        stdout.WriteLine($"decode step, context {settings.Context}, batch {settings.Batch}, {settings.Heads}/{settings.KvHeads} heads, D {settings.HeadDim}, {dtype}, " +
                         $"budget {settings.Budget.ToString(CultureInfo.InvariantCulture)}, {inputs}, {where}, median of {settings.Steps} steps");
        WriteTable(stdout, report, cache.HasNeedles);
        return CliApp.Ok;
    }

    /// <summary>One CSV row per method, and one for GroupQueryAttention when it ran.</summary>
    private static List<BenchCsvRow> CsvRows(AttentionBenchSettings settings, AttentionBenchReport report)
    {
        var device = DeviceOption.Name(settings.Device);
        var rows = report.Methods.Select(r => new BenchCsvRow(device, settings.Batch, settings.Context, r.Method, r.MedianMs, r.BytesRead, r.Recall, r.RelativeError)).ToList();
        if (report.GroupQueryAttention is { Error: null } gqa)
        {
            // Exact attention: it reads the whole cache, as dense does, and attends every key.
            rows.Add(new BenchCsvRow(device, settings.Batch, settings.Context, GroupQueryAttentionName, gqa.MedianMs, report.Methods[0].BytesRead, 1.0, gqa.RelativeErrorVsDense));
        }
        return rows;
    }

    private static void WriteJson(TextWriter stdout, AttentionBenchSettings settings, string dtype, AttentionBenchReport report)
    {
        var gqa = report.GroupQueryAttention;
        var gqaMs = gqa is { Error: null } ? gqa.MedianMs : (double?)null;
        Dictionary<string, object?> Common(string method) => new()
        {
            ["method"] = method, ["device"] = DeviceOption.Name(settings.Device), ["context"] = settings.Context, ["batch"] = settings.Batch, ["heads"] = settings.Heads,
            ["kv_heads"] = settings.KvHeads, ["head_dim"] = settings.HeadDim, ["dtype"] = dtype, ["budget"] = settings.Budget,
        };
        var objects = report.Methods.Select(r =>
        {
            var o = Common(r.Method);
            o["median_ms"] = r.MedianMs;
            o["speedup_vs_dense"] = r.SpeedupVsDense;
            o["bytes_read"] = r.BytesRead;
            o["recall"] = r.Recall;
            o["needle_recall"] = r.NeedleRecall;
            o["relative_error"] = r.RelativeError;
            o["topk_overlap"] = r.TopkOverlap;
            if (gqa is not null)
            {
                o["gqa_ms"] = gqaMs;
                o["speedup_vs_gqa"] = gqaMs / r.MedianMs;
            }
            return o;
        }).ToList();
        if (gqa is not null)
        {
            var o = Common(GroupQueryAttentionName);
            o["median_ms"] = gqaMs;
            o["speedup_vs_dense"] = report.Methods[0].MedianMs / gqaMs;
            o["max_abs_diff_vs_dense"] = gqaMs is null ? null : gqa.MaxAbsDiffVsDense;
            o["relative_error"] = gqaMs is null ? null : gqa.RelativeErrorVsDense;
            o["error"] = gqa.Error;
            objects.Add(o);
        }
        stdout.WriteLine(JsonSerializer.Serialize(objects, new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>The methods' table; with GroupQueryAttention, its row first and every method's speed-up over it.</summary>
    private static void WriteTable(TextWriter stdout, AttentionBenchReport report, bool hasNeedles)
    {
        var dense = report.Methods[0];
        static string Times(double value) => value.ToString("0.00", CultureInfo.InvariantCulture) + "x";
        static string MiB(double bytes) => (bytes / (1 << 20)).ToString("0.0", CultureInfo.InvariantCulture);
        List<string> header = ["method", "median ms", "vs dense", "MiB read", "of dense", "recall", "needles", "rel error", "topk overlap"];
        var table = report.Methods.Select(r => new List<string>
        {
            r.Method, Ms(r.MedianMs), Times(r.SpeedupVsDense), MiB(r.BytesRead), (r.BytesRead / dense.BytesRead).ToString("0.000", CultureInfo.InvariantCulture),
            r.Recall.ToString("0.000", CultureInfo.InvariantCulture), r.NeedleRecall?.ToString("0.00", CultureInfo.InvariantCulture) ?? "-",
            r.RelativeError.ToString("0.0e+0", CultureInfo.InvariantCulture), r.TopkOverlap?.ToString("0.000", CultureInfo.InvariantCulture) ?? "-",
        }).ToList();
        var gqa = report.GroupQueryAttention;
        if (gqa is { Error: null })
        {
            header.Insert(3, "vs GQA");
            foreach (var (row, result) in table.Zip(report.Methods))
            {
                row.Insert(3, Times(gqa.MedianMs / result.MedianMs));
            }
            // Exact attention: the whole cache read, every key attended.
            table.Insert(0,
            [
                GroupQueryAttentionName, Ms(gqa.MedianMs), Times(dense.MedianMs / gqa.MedianMs), Times(1), MiB(dense.BytesRead), "1.000", "1.000",
                hasNeedles ? "1.00" : "-", gqa.RelativeErrorVsDense.ToString("0.0e+0", CultureInfo.InvariantCulture), "-",
            ]);
        }
        Table.Write(stdout, header, table.Select(r => r.ToArray()).ToList());
        if (gqa is not null)
        {
            stdout.WriteLine(gqa.Error is null
                ? $"{GroupQueryAttentionName}: ONNX Runtime's GroupQueryAttention on the same inputs and cache; max |GQA - dense| {gqa.MaxAbsDiffVsDense.ToString("0.0e+0", CultureInfo.InvariantCulture)}"
                : $"{GroupQueryAttentionName}: n/a: {gqa.Error}");
        }
    }

    /// <summary>Dense decode next to ONNX Runtime's own Attention kernel (<c>--compare-onnxruntime</c>).</summary>
    private static void CompareWithOnnxRuntime(AttentionBenchSettings settings, TextWriter stdout, bool json, string? csvPath)
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

        if (csvPath is not null)
        {
            BenchCsv.Append(csvPath, rows.Where(r => !double.IsNaN(r.MedianMs)).Select(r =>
                new BenchCsvRow(DeviceOption.Name(ExecutionDevice.Cpu), benchCase.Batch, context, r.Name, r.MedianMs, null, null, null)));
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
            session = SessionFactory.CreateSession(model.ToByteArray(), options);
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
        using var session = SessionFactory.CreateSession(model.ToByteArray(), options);
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
        var times = DecodeStep.Time(warmup, steps, () => DecodeStep.Run(session, runOptions, binding));
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
