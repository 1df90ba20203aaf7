using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using OrtSparse.Calibration;
using OrtSparse.GraphRewriter;
using OrtSparse.Runtime;
using DataType = Onnx.TensorProto.Types.DataType;

namespace OrtSparse.Cli.Bench;

/// <summary>What <see cref="AttentionBenchmark.Run"/> measures.</summary>
public sealed record AttentionBenchSettings
{
    /// <summary>Where the steps run: every tensor of a step lives in this device's memory.</summary>
    public ExecutionDevice Device { get; init; } = ExecutionDevice.Cpu;

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

    /// <summary>float, float16 or (CUDA only) bfloat16.</summary>
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

    /// <summary>Also time ONNX Runtime's own GroupQueryAttention on the same step (<see cref="AttentionBenchReport.GroupQueryAttention"/>).</summary>
    public bool CompareGroupQueryAttention { get; init; }
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

/// <summary>ONNX Runtime's GroupQueryAttention on the same step as the methods.</summary>
/// <param name="MedianMs">Median time per step; NaN when it could not run.</param>
/// <param name="MaxAbsDiffVsDense">max |o_GQA − o_dense| over the output; NaN when it could not run.</param>
/// <param name="RelativeErrorVsDense">‖o_GQA − o_dense‖ / ‖o_dense‖; NaN when it could not run.</param>
/// <param name="Error">Why it could not run (ONNX Runtime's message), or null.</param>
public sealed record GroupQueryAttentionResult(double MedianMs, double MaxAbsDiffVsDense, double RelativeErrorVsDense, string? Error);

/// <summary>What one benchmark run measured.</summary>
/// <param name="Methods">Dense first, then each method.</param>
/// <param name="GroupQueryAttention">ONNX Runtime's GroupQueryAttention, when compared.</param>
public sealed record AttentionBenchReport(IReadOnlyList<AttentionBenchResult> Methods, GroupQueryAttentionResult? GroupQueryAttention);

/// <summary>
/// Times one decode step of one attention layer for dense and each sparse method, on identical
/// inputs, with the KV cache and method state updated in place as a generation loop binds them, and
/// measures what each selection keeps. The device is a setting: on CUDA the same steps run with
/// every tensor in GPU memory.
/// </summary>
public static class AttentionBenchmark
{
    /// <summary>
    /// Checks that <paramref name="device"/> can run the benchmark (for CUDA: the provider loads and
    /// sees a GPU) before inputs are drawn; throws with what is missing.
    /// </summary>
    public static void CheckDevice(ExecutionDevice device) => BenchDevice.Open(device, threads: 0);

    /// <summary>Runs dense and every method of <paramref name="settings"/> on <paramref name="cache"/> (shaped as the settings say); results in that order.</summary>
    public static AttentionBenchReport Run(AttentionBenchSettings settings, BenchCache cache, TextWriter log)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(cache);
        var device = BenchDevice.Open(settings.Device, settings.Threads);
        var exact = ExactProbabilities(settings, cache);
        using var tensors = StepTensors.Create(device, settings, cache);
        var runs = new List<(string Method, double[] Ms, double[] Output, bool[] Selected, double StateBytes)>();
        foreach (var method in new[] { "dense" }.Concat(settings.Methods.Where(m => m != "dense")))
        {
            log.WriteLine($"bench attention: {method}");
            runs.Add(RunMethod(settings, device, tensors, cache, method));
        }
        var dense = runs[0];
        var topk = runs.FirstOrDefault(r => r.Method == "topk");
        var results = runs.Select(r =>
        {
            var selectedKeys = r.Selected.LongCount(s => s);
            return new AttentionBenchResult(r.Method, DecodeStep.Median(r.Ms), DecodeStep.Median(dense.Ms) / DecodeStep.Median(r.Ms),
                BytesRead: ReadBytes(r.Method, settings, selectedKeys, ElementBytes(settings.ElementType)) + r.StateBytes,
                Recall: Recall(settings, exact, r.Selected),
                NeedleRecall: cache.HasNeedles ? NeedleRecall(settings, cache, r.Selected) : null,
                RelativeError: RelativeError(r.Output, dense.Output),
                TopkOverlap: topk.Selected is null ? null : Jaccard(r.Selected, topk.Selected));
        }).ToList();
        GroupQueryAttentionResult? groupQueryAttention = null;
        if (settings.CompareGroupQueryAttention)
        {
            log.WriteLine("bench attention: onnxruntime GroupQueryAttention");
            groupQueryAttention = RunGroupQueryAttention(settings, device, tensors, dense.Output);
        }
        return new AttentionBenchReport(results, groupQueryAttention);
    }

    /// <summary>The ONNX Runtime element type of <paramref name="type"/>.</summary>
    internal static TensorElementType TensorType(DataType type) => type switch
    {
        DataType.Float => TensorElementType.Float,
        DataType.Float16 => TensorElementType.Float16,
        DataType.Bfloat16 => TensorElementType.BFloat16,
        _ => throw new NotSupportedException($"bench attention does not run {type}"),
    };

    private static int ElementBytes(DataType type) => type == DataType.Float ? 4 : 2;

    private static (string, double[], double[], bool[], double) RunMethod(AttentionBenchSettings s, BenchDevice device, StepTensors tensors, BenchCache cache, string method)
    {
        var spec = MethodCatalog.Get(method);
        var calibration = CalibrationFor(method, s, cache);
        var stateWidth = MethodStateLayout.Width(method, s.HeadDim, lokiRank: s.HeadDim / 4, hashRounds: method == "hash" ? calibration[0].Shape[1] : 0);
        // Timed steps run a node without the selected_keys diagnostic, which costs a pass over the cache.
        using var session = device.OpenSession(DecodeStepModel.SparseAttention(s, method, calibration, stateWidth, reportSelection: false));
        using var reportingSession = device.OpenSession(DecodeStepModel.SparseAttention(s, method, calibration, stateWidth, reportSelection: true));
        using var binding = session.CreateIoBinding();
        tensors.Bind(binding, reporting: false);
        OrtValue? state = null;
        OrtValue? emptyState = null;
        try
        {
            using var runOptions = new RunOptions();
            if (spec.State != MethodState.None)
            {
                // The first call rebuilds the state from the cache (empty past state); later calls update it in place.
                var stateType = spec.State == MethodState.Index ? TensorElementType.Int32 : TensorType(s.ElementType);
                var rows = MethodStateLayout.Rows(method, s.Context, pageSize: 16);
                state = device.Allocate(stateType, [s.Batch, s.KvHeads, rows, stateWidth]);
                emptyState = device.Allocate(stateType, [s.Batch, s.KvHeads, 0, stateWidth]);
                binding.BindInput("past_state", emptyState);
                binding.BindOutput("present_state", state);
                DecodeStep.Run(session, runOptions, binding);
                binding.BindInput("past_state", state);
            }
            var times = DecodeStep.Time(s.Warmup, s.Steps, () => DecodeStep.Run(session, runOptions, binding));
            // One more, untimed step that also reports which keys each group attended, into host memory.
            using var reporting = reportingSession.CreateIoBinding();
            tensors.Bind(reporting, reporting: true);
            if (state is not null)
            {
                reporting.BindInput("past_state", state);
                reporting.BindOutput("present_state", state);
            }
            reporting.BindOutput("selected_keys", tensors.Selected.Value);
            DecodeStep.Run(reportingSession, runOptions, reporting);
            var stateBytes = method switch
            {
                "quest" => (double)s.Batch * s.KvHeads * ((s.Context + 15) / 16) * 2 * s.HeadDim * ElementBytes(s.ElementType),
                "loki" => (double)s.Batch * s.KvHeads * s.Context * stateWidth * ElementBytes(s.ElementType),
                "saap" or "hash" => (double)s.Batch * s.KvHeads * s.Context * stateWidth * 4,
                _ => 0,
            };
            return (method, times, tensors.HostOutput.ToDoubles(), tensors.Selected.ToBools(), stateBytes);
        }
        finally
        {
            state?.Dispose();
            emptyState?.Dispose();
        }
    }

    /// <summary>
    /// ONNX Runtime's GroupQueryAttention bound to the very tensors the methods ran on (the cache as
    /// its shared past/present buffer; it writes the same new key into the same free row), timed the
    /// same way; its output against dense's.
    /// </summary>
    private static GroupQueryAttentionResult RunGroupQueryAttention(AttentionBenchSettings s, BenchDevice device, StepTensors tensors, double[] denseOutput)
    {
        try
        {
            using var session = device.OpenSession(DecodeStepModel.GroupQueryAttention(s));
            using var binding = session.CreateIoBinding();
            tensors.Bind(binding, reporting: false);
            using var runOptions = new RunOptions();
            var times = DecodeStep.Time(s.Warmup, s.Steps, () => DecodeStep.Run(session, runOptions, binding));
            using var reporting = session.CreateIoBinding();
            tensors.Bind(reporting, reporting: true);
            DecodeStep.Run(session, runOptions, reporting);
            var output = tensors.HostOutput.ToDoubles();
            var maxDiff = output.Zip(denseOutput, (a, b) => Math.Abs(a - b)).Max();
            return new GroupQueryAttentionResult(DecodeStep.Median(times), maxDiff, RelativeError(output, denseOutput), null);
        }
        catch (OnnxRuntimeException e)
        {
            // The baseline may not run where ours does (no fp32 CUDA kernel, a size it rejects): say why, keep the methods' results.
            return new GroupQueryAttentionResult(double.NaN, double.NaN, double.NaN, e.Message.Split('\n')[0]);
        }
    }

    /// <summary>Calibration from the cache itself (batch 0): PCA bases, k-means centroids with a classifier that ranks clusters by centroid·q, LSH projections.</summary>
    private static IReadOnlyList<(long[] Shape, float[] Data)> CalibrationFor(string method, AttentionBenchSettings s, BenchCache cache)
    {
        int d = s.HeadDim, group = s.Heads / s.KvHeads;
        var sampleRows = Math.Min(s.Context - 1, 16384);
        float[] KeysOf(int g) => cache.Keys[g].AsSpan(0, sampleRows * d).ToArray();  // batch 0's rows of KV head g
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
            int b = bh / s.Heads, h = bh % s.Heads, bg = b * s.KvHeads + h / group;
            var q = cache.Query.AsSpan(bh * d, d);
            var scores = new double[t];
            for (var j = 0; j < t; j++)
            {
                var k = j == t - 1 ? cache.NewKey.AsSpan(bg * d, d) : cache.Keys[bg].AsSpan(j * d, d);
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
}
