using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Onnx;
using OrtSparse.Cli.Bench;
using OrtSparse.GraphRewriter;
using OrtSparse.Runtime;

namespace OrtSparse.Cli.Commands;

/// <summary>
/// <c>ortsparse bench attention</c>: times one decode step of one attention layer, our op next to
/// ONNX Runtime's own <c>Attention</c> kernel on identical inputs, in the same run.
/// </summary>
internal static class BenchCommand
{
    private const string Usage = """
        usage: ortsparse bench attention [--context 4096] [--batch 1] [--heads 32] [--kv-heads 8] [--head-dim 128]
                                         [--dtype fp32|fp16] [--steps 20] [--warmup 3] [--threads 0] [--json]

        One decode step (one new token against a cache of CONTEXT-1 tokens) of a single attention
        layer, on the same seeded inputs:
          onnxruntime-attention  ONNX Runtime's own CPU kernel for ONNX Attention-23 (concatenates past and new KV)
          ortsparse-concat       the same model patched by 'ortsparse patch --method dense' (same semantics)
          ortsparse-inplace      SparseAttention with seqlens_k and past/present bound to one buffer (no copy)
        Reports the median time per step, the speed-up against onnxruntime-attention and the largest
        output difference from it.
        """;

    private sealed record Row(string Name, double MedianMs, double MeanMs, double? SpeedupVsBaseline, double? MaxAbsDiffVsBaseline, string? Note);

    public static int Run(string[] args, TextWriter stdout)
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
        var line = CommandLine.Parse(args[1..], ["--context", "--batch", "--heads", "--kv-heads", "--head-dim", "--dtype", "--steps", "--warmup", "--threads", "--device"], ["--json", "--help", "-h"]);
        if (line.Flag("--help") || line.Flag("-h"))
        {
            stdout.WriteLine(Usage);
            return CliApp.Ok;
        }
        var context = line.Int("--context", 4096, 2, 1 << 24);
        var dtype = line.Option("--dtype") ?? "fp32";
        var benchCase = new AttentionCase
        {
            Batch = line.Int("--batch", 1, 1, 4096),
            QueryLength = 1,
            PastLength = context - 1,
            NumHeads = line.Int("--heads", 32, 1, 4096),
            KvNumHeads = line.Int("--kv-heads", 8, 1, 4096),
            HeadDim = line.Int("--head-dim", 128, 1, 1024),
            IsCausal = true,
            ElementType = dtype switch
            {
                "fp32" => TensorProto.Types.DataType.Float,
                "fp16" => TensorProto.Types.DataType.Float16,
                _ => throw new UsageException($"unknown dtype '{dtype}' (fp32, fp16)"),
            },
        };
        if (benchCase.NumHeads % benchCase.KvNumHeads != 0)
        {
            throw new UsageException($"--heads ({benchCase.NumHeads}) must be a multiple of --kv-heads ({benchCase.KvNumHeads})");
        }
        var steps = line.Int("--steps", 20, 1, 100000);
        var warmup = line.Int("--warmup", 3, 0, 100000);
        var config = new SessionConfig { Device = DeviceOption.Parse(line.Option("--device")), IntraOpThreads = line.Int("--threads", 0, 0, 1024) };
        if (config.Device != ExecutionDevice.Cpu)
        {
            throw new UsageException("bench attention runs on cpu for now; CUDA kernels land with the CUDA issue");
        }

        var original = benchCase.BuildModel();
        var patched = ModelPatcher.Patch(original).Model;
        var inputs = benchCase.CreateInputs(seed: 1234);
        var rows = new List<Row>();
        try
        {
            var (baselineMs, baselineOutput, baselineError) = TimeModel(original, inputs, config, steps, warmup);
            var (concatMs, concatOutput, _) = TimeModel(patched, inputs, config, steps, warmup, required: true);
            var (inplaceMs, inplaceOutput) = TimeInPlace(benchCase, inputs, config, steps, warmup);
            double? Speedup(double[] ms) => baselineMs is null ? null : Median(baselineMs) / Median(ms);
            double? Diff(double[] output) => baselineOutput is null ? null : baselineOutput.Zip(output, (a, b) => Math.Abs(a - b)).Max();
            rows.Add(baselineMs is null
                ? new Row("onnxruntime-attention", double.NaN, double.NaN, null, null, baselineError)
                : new Row("onnxruntime-attention", Median(baselineMs), baselineMs.Average(), 1.0, 0.0, null));
            rows.Add(new Row("ortsparse-concat", Median(concatMs!), concatMs!.Average(), Speedup(concatMs!), Diff(concatOutput!), null));
            rows.Add(new Row("ortsparse-inplace", Median(inplaceMs), inplaceMs.Average(), Speedup(inplaceMs), Diff(inplaceOutput), null));
        }
        finally
        {
            foreach (var value in inputs.Values)
            {
                value.Dispose();
            }
        }

        if (line.Flag("--json"))
        {
            var json = rows.Select(r => new Dictionary<string, object?>
            {
                ["name"] = r.Name, ["context"] = context, ["batch"] = benchCase.Batch, ["heads"] = benchCase.NumHeads,
                ["kv_heads"] = benchCase.KvNumHeads, ["head_dim"] = benchCase.HeadDim, ["dtype"] = dtype,
                ["median_ms"] = double.IsNaN(r.MedianMs) ? null : r.MedianMs, ["mean_ms"] = double.IsNaN(r.MeanMs) ? null : r.MeanMs,
                ["speedup_vs_baseline"] = r.SpeedupVsBaseline, ["max_abs_diff_vs_baseline"] = r.MaxAbsDiffVsBaseline, ["note"] = r.Note,
            });
            stdout.WriteLine(JsonSerializer.Serialize(json, new JsonSerializerOptions { WriteIndented = true }));
            return CliApp.Ok;
        }
        stdout.WriteLine($"decode step, context {context}, batch {benchCase.Batch}, {benchCase.NumHeads}/{benchCase.KvNumHeads} heads, D {benchCase.HeadDim}, {dtype}, " +
                         $"{(config.IntraOpThreads == 0 ? "default" : config.IntraOpThreads.ToString(CultureInfo.InvariantCulture))} threads, median of {steps} steps");
        Table.Write(stdout, ["kernel", "median ms", "mean ms", "speed-up", "max |diff|"], rows.Select(r => new[]
        {
            r.Name, Ms(r.MedianMs), Ms(r.MeanMs),
            r.SpeedupVsBaseline is { } s ? s.ToString("0.00", CultureInfo.InvariantCulture) + "x" : "-",
            r.MaxAbsDiffVsBaseline is { } d ? d.ToString("0.0e+0", CultureInfo.InvariantCulture) : (r.Note ?? "-"),
        }).ToList());
        return CliApp.Ok;
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
            var times = new double[steps];
            for (var i = 0; i < warmup + steps; i++)
            {
                var started = Stopwatch.GetTimestamp();
                using var outputs = session.Run(runOptions, names, values, session.OutputNames);
                var elapsed = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                if (i >= warmup)
                {
                    times[i - warmup] = elapsed;
                }
                output ??= TensorValues.ToDoubles(outputs.First());
            }
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
        using var binding = session.CreateIoBinding();
        binding.BindInput("query", inputs["query"]);
        binding.BindInput("key", inputs["key"]);
        binding.BindInput("value", inputs["value"]);
        binding.BindInput("past_key", keyCache);
        binding.BindInput("past_value", valueCache);
        binding.BindInput("seqlens_k", seqlens);
        binding.BindInput("total_sequence_length", total);
        binding.BindOutput("present_key", keyCache);
        binding.BindOutput("present_value", valueCache);
        var outputShape = new long[] { benchCase.Batch, 1, benchCase.NumHeads * benchCase.HeadDim };
        using var output = benchCase.ElementType == TensorProto.Types.DataType.Float16
            ? OrtValue.CreateTensorValueFromMemory(new Float16[outputShape.Aggregate(1L, (a, d) => a * d)], outputShape)
            : OrtValue.CreateTensorValueFromMemory(new float[outputShape.Aggregate(1L, (a, d) => a * d)], outputShape);
        binding.BindOutput("output", output);
        using var runOptions = new RunOptions();
        var times = new double[steps];
        for (var i = 0; i < warmup + steps; i++)
        {
            var started = Stopwatch.GetTimestamp();
            session.RunWithBinding(runOptions, binding);
            var elapsed = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            if (i >= warmup)
            {
                times[i - warmup] = elapsed;
            }
        }
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

    private static double Median(double[] values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static string Ms(double value) => double.IsNaN(value) ? "-" : value.ToString("0.000", CultureInfo.InvariantCulture);
}
