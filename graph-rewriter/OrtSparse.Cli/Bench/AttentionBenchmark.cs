using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Onnx;
using OrtSparse.Calibration;
using OrtSparse.GraphRewriter;
using OrtSparse.Onnx;
using OrtSparse.Runtime;
using DataType = Onnx.TensorProto.Types.DataType;

namespace OrtSparse.Cli.Bench;

/// <summary>What <see cref="AttentionBenchmark.Run"/> measures.</summary>
public sealed record AttentionBenchSettings
{
    /// <summary>Batch size.</summary>
    public int Batch { get; init; } = 1;

    /// <summary>Cache length after the step.</summary>
    public int Context { get; init; } = 32768;

    /// <summary>Query heads.</summary>
    public int Heads { get; init; } = 32;

    /// <summary>Key/value heads.</summary>
    public int KvHeads { get; init; } = 8;

    /// <summary>Head size.</summary>
    public int HeadDim { get; init; } = 128;

    /// <summary>float or float16.</summary>
    public DataType ElementType { get; init; } = DataType.Float;

    /// <summary>Methods to time; dense is always timed first as the baseline.</summary>
    public IReadOnlyList<string> Methods { get; init; } = ["topk", "streaming", "loki", "quest", "saap", "hash"];

    /// <summary>The sparse methods' budget.</summary>
    public double Budget { get; init; } = 0.0625;

    /// <summary>Planted needles per KV head.</summary>
    public int Needles { get; init; } = 8;

    /// <summary>Timed steps per method (the median is reported).</summary>
    public int Steps { get; init; } = 10;

    /// <summary>Untimed steps first.</summary>
    public int Warmup { get; init; } = 2;

    /// <summary>Intra-op threads (0: ONNX Runtime's choice).</summary>
    public int Threads { get; init; }

    /// <summary>Seed of the synthetic inputs and calibration.</summary>
    public int Seed { get; init; }
}

/// <summary>One method's decode step, measured against dense in the same run.</summary>
/// <param name="Method">The method.</param>
/// <param name="MedianMs">Median time per step.</param>
/// <param name="SpeedupVsDense">Dense median / this median.</param>
/// <param name="BytesRead">KV bytes and method state read per step (from the selection and the method's summaries).</param>
/// <param name="Recall">Exact softmax mass of the attended keys, averaged over query heads.</param>
/// <param name="NeedleRecall">Fraction of planted needles attended; null without planted needles (a captured cache).</param>
/// <param name="RelativeError">‖o − o_dense‖ / ‖o_dense‖.</param>
/// <param name="TopkOverlap">|S ∩ S_topk| / |S ∪ S_topk| (Jaccard) of the attended keys, when topk ran.</param>
public sealed record AttentionBenchResult(string Method, double MedianMs, double SpeedupVsDense, double BytesRead, double Recall, double? NeedleRecall, double RelativeError, double? TopkOverlap);

/// <summary>
/// Times one decode step of one attention layer for dense and each sparse method, on identical
/// synthetic inputs with planted needles, with the KV cache and method state updated in place as
/// a generation loop binds them, and measures what each selection keeps.
/// </summary>
public static class AttentionBenchmark
{
    private const int SelectedKeysOutput = 5;

    /// <summary>Runs dense and every method of <paramref name="settings"/> on <paramref name="cache"/> (shaped as the settings say); results in that order.</summary>
    public static IReadOnlyList<AttentionBenchResult> Run(AttentionBenchSettings settings, BenchCache cache, TextWriter log)
    {
        var exact = ExactProbabilities(settings, cache);
        var runs = new List<(string Method, double[] Ms, double[] Output, bool[] Selected, double StateBytes)>();
        foreach (var method in new[] { "dense" }.Concat(settings.Methods.Where(m => m != "dense")))
        {
            log.WriteLine($"bench attention: {method}");
            runs.Add(RunMethod(settings, cache, method));
        }
        var dense = runs[0];
        var topk = runs.FirstOrDefault(r => r.Method == "topk");
        var elementBytes = settings.ElementType == DataType.Float16 ? 2 : 4;
        return runs.Select(r =>
        {
            var selectedKeys = r.Selected.LongCount(s => s);
            return new AttentionBenchResult(r.Method, DecodeStep.Median(r.Ms), DecodeStep.Median(dense.Ms) / DecodeStep.Median(r.Ms),
                BytesRead: ReadBytes(r.Method, settings, selectedKeys, elementBytes) + r.StateBytes,
                Recall: Recall(settings, exact, r.Selected),
                NeedleRecall: cache.HasNeedles ? NeedleRecall(settings, cache, r.Selected) : null,
                RelativeError: RelativeError(r.Output, dense.Output),
                TopkOverlap: topk.Selected is null ? null : Jaccard(r.Selected, topk.Selected));
        }).ToList();
    }

    private static (string, double[], double[], bool[], double) RunMethod(AttentionBenchSettings s, BenchCache cache, string method)
    {
        var spec = MethodCatalog.Get(method);
        var calibration = CalibrationFor(method, s, cache);
        var stateWidth = method switch
        {
            "quest" => 2L * s.HeadDim,
            "loki" => s.HeadDim / 4,
            "saap" => 1,
            "hash" => calibration[0].Shape[1],
            _ => 0,
        };
        using var options = SessionFactory.CreateOptions(new SessionConfig { IntraOpThreads = s.Threads });
        // Timed steps run a node without the selected_keys diagnostic, which costs a pass over the cache.
        using var session = new InferenceSession(StepModel(s, method, calibration, stateWidth, reportSelection: false).ToByteArray(), options);
        using var reportingSession = new InferenceSession(StepModel(s, method, calibration, stateWidth, reportSelection: true).ToByteArray(), options);

        using var query = Tensor(cache.Query, [s.Batch, 1, s.Heads * s.HeadDim], s.ElementType);
        using var key = Tensor(cache.NewKey, [s.Batch, 1, s.KvHeads * s.HeadDim], s.ElementType);
        using var value = Tensor(cache.NewValue, [s.Batch, 1, s.KvHeads * s.HeadDim], s.ElementType);
        long[] cacheShape = [s.Batch, s.KvHeads, s.Context, s.HeadDim];
        using var keys = Tensor(cache.Keys, cacheShape, s.ElementType);
        using var values = Tensor(cache.Values, cacheShape, s.ElementType);
        using var seqlens = OrtValue.CreateTensorValueFromMemory(Enumerable.Repeat(s.Context - 1, s.Batch).ToArray(), [s.Batch]);
        using var total = OrtValue.CreateTensorValueFromMemory(new[] { s.Context }, []);
        using var output = Tensor(new float[s.Batch * s.Heads * s.HeadDim], [s.Batch, 1, s.Heads * s.HeadDim], s.ElementType);
        using var selected = OrtValue.CreateTensorValueFromMemory(new bool[(long)s.Batch * s.KvHeads * s.Context], [s.Batch, s.KvHeads, 1, s.Context]);

        using var binding = session.CreateIoBinding();
        DecodeStep.Bind(binding, query, key, value, keys, values, seqlens, total, output);
        OrtValue? state = null;
        OrtValue? emptyState = null;
        try
        {
            if (spec.State != MethodState.None)
            {
                // The first call rebuilds the state from the cache (empty past state); later calls update it in place.
                var stateType = spec.State == MethodState.Index ? TensorElementType.Int32 : ElementType(s.ElementType);
                var rows = method == "quest" ? (s.Context + 15) / 16 : s.Context;
                state = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, stateType, [s.Batch, s.KvHeads, rows, stateWidth]);
                emptyState = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, stateType, [s.Batch, s.KvHeads, 0, stateWidth]);
                binding.BindInput("past_state", emptyState);
                binding.BindOutput("present_state", state);
                using var build = new RunOptions();
                session.RunWithBinding(build, binding);
                binding.BindInput("past_state", state);
            }
            using var runOptions = new RunOptions();
            var times = DecodeStep.Time(s.Warmup, s.Steps, () => session.RunWithBinding(runOptions, binding));
            // One more, untimed step that also reports which keys each group attended.
            using var reporting = reportingSession.CreateIoBinding();
            DecodeStep.Bind(reporting, query, key, value, keys, values, seqlens, total, output);
            if (state is not null)
            {
                reporting.BindInput("past_state", state);
                reporting.BindOutput("present_state", state);
            }
            reporting.BindOutput("selected_keys", selected);
            reportingSession.RunWithBinding(runOptions, reporting);
            var stateBytes = method switch
            {
                "quest" => (double)s.Batch * s.KvHeads * ((s.Context + 15) / 16) * 2 * s.HeadDim * (s.ElementType == DataType.Float16 ? 2 : 4),
                "loki" => (double)s.Batch * s.KvHeads * s.Context * stateWidth * (s.ElementType == DataType.Float16 ? 2 : 4),
                "saap" or "hash" => (double)s.Batch * s.KvHeads * s.Context * stateWidth * 4,
                _ => 0,
            };
            return (method, times, TensorValues.ToDoubles(output), selected.GetTensorDataAsSpan<bool>().ToArray(), stateBytes);
        }
        finally
        {
            state?.Dispose();
            emptyState?.Dispose();
        }
    }

    /// <summary>A single SparseAttention node in decode mode with its calibration as initializers, and the selected_keys output if <paramref name="reportSelection"/>.</summary>
    private static ModelProto StepModel(AttentionBenchSettings s, string method, IReadOnlyList<(long[] Shape, float[] Data)> calibration, long stateWidth,
        bool reportSelection)
    {
        var type = s.ElementType;
        var spec = MethodCatalog.Get(method);
        var inputs = new List<ValueInfoProto>
        {
            OnnxBuilder.TensorValueInfo("query", type, [s.Batch, 1, s.Heads * s.HeadDim]),
            OnnxBuilder.TensorValueInfo("key", type, [s.Batch, 1, s.KvHeads * s.HeadDim]),
            OnnxBuilder.TensorValueInfo("value", type, [s.Batch, 1, s.KvHeads * s.HeadDim]),
            OnnxBuilder.TensorValueInfo("past_key", type, [s.Batch, s.KvHeads, s.Context, s.HeadDim]),
            OnnxBuilder.TensorValueInfo("past_value", type, [s.Batch, s.KvHeads, s.Context, s.HeadDim]),
            OnnxBuilder.TensorValueInfo("seqlens_k", DataType.Int32, [s.Batch]),
            OnnxBuilder.TensorValueInfo("total_sequence_length", DataType.Int32, []),
        };
        var slots = new string[SparseAttentionOp.InputNames.Count];
        Array.Fill(slots, "");
        foreach (var name in new[] { "query", "key", "value", "past_key", "past_value", "seqlens_k", "total_sequence_length" })
        {
            slots[SparseAttentionOp.InputIndex(name)] = name;
        }
        var outputs = new[] { "output", "present_key", "present_value", "", "", reportSelection ? "selected_keys" : "" };
        var stateType = spec.State == MethodState.Index ? DataType.Int32 : type;
        if (spec.State != MethodState.None)
        {
            var slot = spec.State == MethodState.Index ? "index" : "summary";
            slots[SparseAttentionOp.InputIndex($"past_{slot}")] = "past_state";
            outputs[SparseAttentionOp.OutputNames.ToList().IndexOf($"present_{slot}")] = "present_state";
            inputs.Add(OnnxBuilder.TensorValueInfo("past_state", stateType, [s.Batch, s.KvHeads, "state_rows", stateWidth]));
        }
        var initializers = calibration.Select((c, i) => OnnxTensor.Create($"method_data_{i}", c.Data, c.Shape)).ToList();
        for (var i = 0; i < initializers.Count; i++)
        {
            slots[SparseAttentionOp.InputIndex($"method_data_{i}")] = initializers[i].Name;
        }
        var attributes = new List<AttributeProto>
        {
            OnnxBuilder.IntAttribute("num_heads", s.Heads),
            OnnxBuilder.IntAttribute("kv_num_heads", s.KvHeads),
            OnnxBuilder.StringAttribute("method", method),
        };
        if (spec.Parameters.Any(p => p.Name == "budget"))
        {
            attributes.Add(OnnxBuilder.FloatAttribute("budget", (float)s.Budget));
        }
        var node = OnnxBuilder.Node(SparseAttentionOp.OpType, slots.Reverse().SkipWhile(n => n == "").Reverse(), outputs.Reverse().SkipWhile(n => n == "").Reverse(), attributes, "attention", SparseAttentionOp.Domain);
        var graphOutputs = outputs.Where(o => o.Length > 0).Select(o => OnnxBuilder.TensorValueInfo(o,
            o == "selected_keys" ? DataType.Bool : o == "present_state" ? stateType : type, null));
        var graph = OnnxBuilder.Graph("bench_step", [node], inputs, graphOutputs, initializers);
        return OnnxBuilder.Model(graph, [OnnxBuilder.Opset("", 23), OnnxBuilder.Opset(SparseAttentionOp.Domain, SparseAttentionOp.DomainVersion)]);
    }

    /// <summary>Calibration from the cache itself (batch 0): PCA bases, k-means centroids with a classifier that ranks clusters by centroid·q, LSH projections.</summary>
    private static IReadOnlyList<(long[] Shape, float[] Data)> CalibrationFor(string method, AttentionBenchSettings s, BenchCache cache)
    {
        int d = s.HeadDim, group = s.Heads / s.KvHeads;
        var sampleRows = Math.Min(s.Context - 1, 16384);
        float[] KeysOf(int g) => cache.Keys.AsSpan((int)((long)g * s.Context * d), sampleRows * d).ToArray();
        static (long[], float[]) Of(CalibrationTensor t) => (t.Shape.Select(x => (long)x).ToArray(), t.Values.ToArray());
        switch (method)
        {
            case "loki":
                return [Of(CalibrationTensor.Stack(Enumerable.Range(0, s.KvHeads).Select(g => Pca.Fit(KeysOf(g), d).Basis).ToList()))];
            case "hash":
                return [Of(HashProjections.Create(s.KvHeads, 2, d, 16, s.Seed))];
            case "saap":
            {
                var clusters = Math.Clamp(s.Context / 32, 1, 1024);
                var centroids = Enumerable.Range(0, s.KvHeads)
                    .Select(g => SphericalKMeans.Fit(KeysOf(g), d, new SphericalKMeansOptions { Clusters = clusters, Seed = s.Seed, MaxIterations = 5 }).Centroids).ToList();
                // z = C·relu(q) − C·relu(−q) = C·q: the MLP layout expressing centroid ranking exactly.
                var w1 = new float[s.Heads * d * 2 * d];
                var w2 = new float[s.Heads * (2 * d + 1) * clusters];
                for (var h = 0; h < s.Heads; h++)
                {
                    var c = centroids[h / group].Values.Span;
                    for (var i = 0; i < d; i++)
                    {
                        w1[(h * d + i) * 2 * d + i] = 1;
                        w1[(h * d + i) * 2 * d + d + i] = -1;
                        for (var k = 0; k < clusters; k++)
                        {
                            w2[(h * (2 * d + 1) + i) * clusters + k] = c[k * d + i];
                            w2[(h * (2 * d + 1) + d + i) * clusters + k] = -c[k * d + i];
                        }
                    }
                }
                return [Of(CalibrationTensor.Stack(centroids)), ([s.Heads, d, 2 * d], w1), ([s.Heads, 2 * d], new float[s.Heads * 2 * d]), ([s.Heads, 2 * d + 1, clusters], w2)];
            }
            default:
                return [];
        }
    }

    /// <summary>Exact attention probabilities per (b, query head) over all T keys, in double.</summary>
    private static double[][] ExactProbabilities(AttentionBenchSettings s, BenchCache cache)
    {
        int d = s.HeadDim, group = s.Heads / s.KvHeads, t = s.Context;
        var result = new double[s.Batch * s.Heads][];
        Parallel.For(0, s.Batch * s.Heads, bh =>
        {
            int b = bh / s.Heads, h = bh % s.Heads, g = h / group;
            var q = cache.Query.AsSpan(bh * d, d);
            var scores = new double[t];
            for (var j = 0; j < t; j++)
            {
                var k = j == t - 1 ? cache.NewKey.AsSpan((b * s.KvHeads + g) * d, d) : cache.Keys.AsSpan((int)((((long)b * s.KvHeads + g) * t + j) * d), d);
                double dot = 0;
                for (var i = 0; i < d; i++)
                {
                    dot += (double)q[i] * k[i];
                }
                scores[j] = dot / Math.Sqrt(d);
            }
            var max = scores.Max();
            var sum = 0.0;
            for (var j = 0; j < t; j++)
            {
                scores[j] = Math.Exp(scores[j] - max);
                sum += scores[j];
            }
            for (var j = 0; j < t; j++)
            {
                scores[j] /= sum;
            }
            result[bh] = scores;
        });
        return result;
    }

    private static double Recall(AttentionBenchSettings s, double[][] exact, bool[] selected)
    {
        int group = s.Heads / s.KvHeads, t = s.Context;
        double total = 0;
        for (var bh = 0; bh < exact.Length; bh++)
        {
            int b = bh / s.Heads, g = bh % s.Heads / group;
            var offset = ((long)b * s.KvHeads + g) * t;
            for (var j = 0; j < t; j++)
            {
                if (selected[offset + j])
                {
                    total += exact[bh][j];
                }
            }
        }
        return total / exact.Length;
    }

    private static double NeedleRecall(AttentionBenchSettings s, BenchCache cache, bool[] selected)
    {
        int found = 0, count = 0;
        for (var bg = 0; bg < s.Batch * s.KvHeads; bg++)
        {
            foreach (var position in cache.Needles[bg])
            {
                count++;
                found += selected[(long)bg * s.Context + position] ? 1 : 0;
            }
        }
        return count == 0 ? 1 : (double)found / count;
    }

    /// <summary>Bytes a method reads per step: its summaries or index, the keys it scores, and keys and values it attends.</summary>
    private static double ReadBytes(string method, AttentionBenchSettings s, long attended, int elementBytes)
    {
        double kv = attended * 2.0 * s.HeadDim * elementBytes;
        return method == "topk"
            ? (double)s.Batch * s.KvHeads * s.Context * s.HeadDim * elementBytes + attended * (double)s.HeadDim * elementBytes
            : kv;
    }

    private static double RelativeError(double[] output, double[] reference)
    {
        double error = 0, norm = 0;
        for (var i = 0; i < output.Length; i++)
        {
            error += (output[i] - reference[i]) * (output[i] - reference[i]);
            norm += reference[i] * reference[i];
        }
        return Math.Sqrt(error / norm);
    }

    private static double Jaccard(bool[] a, bool[] b)
    {
        long both = 0, either = 0;
        for (var i = 0; i < a.Length; i++)
        {
            both += a[i] && b[i] ? 1 : 0;
            either += a[i] || b[i] ? 1 : 0;
        }
        return either == 0 ? 1 : (double)both / either;
    }

    private static OrtValue Tensor(float[] data, long[] shape, DataType type) => type == DataType.Float16
        ? OrtValue.CreateTensorValueFromMemory(data.Select(v => (Float16)v).ToArray(), shape)
        : OrtValue.CreateTensorValueFromMemory(data, shape);

    private static TensorElementType ElementType(DataType type) => type == DataType.Float16 ? TensorElementType.Float16 : TensorElementType.Float;
}
