using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Onnx;
using OrtSparse.Calibration;
using OrtSparse.Cli.Calibrate;
using OrtSparse.GraphRewriter;
using OrtSparse.Onnx;
using OrtSparse.Runtime;
using DataType = Onnx.TensorProto.Types.DataType;

namespace OrtSparse.Cli.Bench.Fidelity;

/// <summary>How <see cref="LayerRecall.Measure"/> runs.</summary>
/// <param name="Queries">Decode steps measured: the last positions of the captured sequence (at least 1, fewer than its length).</param>
/// <param name="Session">Where the steps run (CPU or CUDA) and with which threads, op library and GPU.</param>
internal sealed record RecallOptions(int Queries, SessionConfig Session);

/// <summary>
/// Per-layer recall of a method on a real sequence: every layer's SparseAttention node, exactly as
/// the patched model runs it (attributes, rotary tables, calibration), is run alone on the query, key
/// and value the layer saw; a prefill builds the cache and the method's state, then one decode step
/// per measured position reports the keys it selects, and recall is the exact softmax mass of those keys.
/// </summary>
internal static class LayerRecall
{
    /// <summary>
    /// Per layer (replaceable attention site in graph order): the mean, over the last options.Queries positions of the captured
    /// sequence and over query heads, of the exact softmax mass of the keys the method's decode step selects.
    /// </summary>
    /// <param name="original">The unpatched model the activations were captured from.</param>
    /// <param name="captured">
    /// <see cref="ActivationCapture.Run"/> of <paramref name="original"/> on one sequence of T tokens, with values.
    /// </param>
    /// <param name="method">The method and its parameters, patched onto every layer.</param>
    /// <param name="calibration">Calibration for methods that need it (loki, saap; hash draws projections without).</param>
    /// <param name="options">Positions measured and the session.</param>
    /// <exception cref="InvalidDataException">The activations were not captured from this model, hold several sequences or no values, or the sequence is too short.</exception>
    /// <exception cref="PatchException">The model cannot be patched with <paramref name="method"/> (e.g. calibration missing).</exception>
    public static IReadOnlyList<double> Measure(ModelProto original, IReadOnlyList<SiteActivations> captured, MethodConfig method,
        CalibrationData? calibration, RecallOptions options)
    {
        ArgumentNullException.ThrowIfNull(original);
        ArgumentNullException.ThrowIfNull(captured);
        ArgumentNullException.ThrowIfNull(method);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(options.Session);
        var length = CheckCapture(original, captured, options.Queries);
        var patch = ModelPatcher.Patch(original, new PatchOptions { Method = method, Calibration = calibration, MaxLength = length });
        // Rewrites replace each site in place, so the op nodes are in layer order.
        var nodes = patch.Model.Graph.Node.Where(n => n.OpType == SparseAttentionOp.OpType && n.Domain == SparseAttentionOp.Domain).ToList();
        if (nodes.Count != captured.Count)
        {
            throw new InvalidOperationException($"the patched model has {nodes.Count} SparseAttention nodes for {captured.Count} layers");
        }
        var device = BenchDevice.Open(options.Session);
        var recall = new double[captured.Count];
        for (var layer = 0; layer < captured.Count; layer++)
        {
            var step = LayerStep.Create(patch.Model.Graph, nodes[layer], captured[layer], layer);
            var first = length - options.Queries;
            var selections = SelectedKeys(device, step, captured[layer], first, length);
            recall[layer] = Enumerable.Range(0, options.Queries).Average(i => step.Reference.Recall(first + i, selections[i]));
        }
        return recall;
    }

    /// <summary>Checks that <paramref name="captured"/> is one sequence of this model's sites, with values; returns its length T.</summary>
    private static int CheckCapture(ModelProto original, IReadOnlyList<SiteActivations> captured, int queries)
    {
        var sites = AttentionSiteFinder.Find(original).Where(s => s.CanReplace).ToList();
        if (captured.Count != sites.Count)
        {
            throw new InvalidDataException($"the captured activations hold {captured.Count} attention layer(s) but the model has {sites.Count}: " +
                                           "capture them from this model (ActivationCapture.Run)");
        }
        for (var layer = 0; layer < sites.Count; layer++)
        {
            var (site, seen) = (sites[layer], captured[layer]);
            if (seen.Site.NodeName != site.NodeName || seen.Site.NumHeads != site.NumHeads || seen.Site.KvNumHeads != site.KvNumHeads ||
                (site.HeadDim is { } d && seen.HeadDim != d))
            {
                throw new InvalidDataException($"captured layer {layer} ('{seen.Site.NodeName}', {seen.Site.NumHeads}/{seen.Site.KvNumHeads} heads of {seen.HeadDim}) " +
                                               $"is not the model's layer {layer} ('{site.NodeName}', {site.NumHeads}/{site.KvNumHeads} heads of {site.HeadDim?.ToString() ?? "?"}): " +
                                               "capture the activations from this model");
            }
            if (seen.Values is null)
            {
                throw new InvalidDataException($"captured layer {layer} has no values: capture with withValues: true");
            }
        }
        var visible = captured[0].VisibleKeys;
        var length = visible.Length;
        for (var t = 0; t < length; t++)
        {
            if (visible[t] != new KeyRange(0, t + 1))
            {
                throw new InvalidDataException($"the captured activations hold several sequences (position {t} sees keys [{visible[t].Start}, {visible[t].End})): " +
                                               "recall is measured on one sequence");
            }
        }
        if (queries < 1 || queries >= length)
        {
            throw new InvalidDataException($"Queries ({queries}) must be at least 1 and less than the captured sequence's {length} tokens (a prefill builds the cache first)");
        }
        return length;
    }

    /// <summary>
    /// Runs the prefill of positions [0, <paramref name="first"/>) and a decode step for each position of
    /// [<paramref name="first"/>, <paramref name="length"/>), the cache and state shared between past and
    /// present (updated in place) as a generation loop binds them; the decode steps' selected_keys [Hkv·T].
    /// </summary>
    private static List<bool[]> SelectedKeys(BenchDevice device, LayerStep step, SiteActivations site, int first, int length)
    {
        using var prefillSession = device.OpenSession(step.Model(reportSelection: false));
        using var decodeSession = device.OpenSession(step.Model(reportSelection: true));
        var elementType = AttentionBenchmark.TensorType(step.ElementType);
        BenchTensor OnDevice(TensorElementType type, long[] shape, Action<BenchTensor>? fill = null) => BenchTensor.OnDevice(device, type, shape, fill);
        using var keyCache = OnDevice(elementType, [1, step.KvHeads, length, step.HeadDim]);
        using var valueCache = OnDevice(elementType, [1, step.KvHeads, length, step.ValueHeadDim]);
        // The state of the empty prefix is never read: the op merges into a row only what keys before the step put there.
        using var state = step.State is { } layout ? OnDevice(layout.Type, [1, step.KvHeads, layout.Rows, layout.Width]) : null;
        using var totalLength = BenchTensor.OnHost(TensorElementType.Int32, []);  // read on the host
        totalLength.Write(0, [length]);
        using var runOptions = new RunOptions();

        void Run(InferenceSession session, int start, int count, BenchTensor? selected)
        {
            using var query = OnDevice(elementType, [1, count, step.Heads * step.HeadDim], t => t.Write(0, Rows(site.Queries, step.HeadDim, start, count)));
            using var key = OnDevice(elementType, [1, count, step.KvHeads * step.HeadDim], t => t.Write(0, Rows(site.Keys, step.HeadDim, start, count)));
            using var value = OnDevice(elementType, [1, count, step.KvHeads * step.ValueHeadDim], t => t.Write(0, Rows(site.Values!, step.ValueHeadDim, start, count)));
            using var seqlens = OnDevice(TensorElementType.Int32, [1], t => t.Write(0, [start + count - 1]));
            using var output = OnDevice(elementType, [1, count, step.Heads * step.ValueHeadDim]);
            using var binding = session.CreateIoBinding();
            DecodeStep.Bind(binding, query.Value, key.Value, value.Value, keyCache.Value, valueCache.Value, seqlens.Value, totalLength.Value, output.Value);
            if (state is not null)
            {
                binding.BindInput(LayerStep.PastState, state.Value);
                binding.BindOutput(LayerStep.PresentState, state.Value);
            }
            if (selected is not null)
            {
                binding.BindOutput(LayerStep.SelectedKeys, selected.Value);
            }
            DecodeStep.Run(session, runOptions, binding);
        }

        Run(prefillSession, 0, first, selected: null);
        var selections = new List<bool[]>();
        for (var position = first; position < length; position++)
        {
            using var selected = BenchTensor.OnHost(TensorElementType.Bool, [1, step.KvHeads, 1, length]);
            Run(decodeSession, position, 1, selected);
            selections.Add(selected.ToBools());
        }
        return selections;
    }

    /// <summary>Positions [start, start + count) of per-head rows as [count, heads·dim] (the op's [B, S, H·D] layout).</summary>
    private static float[] Rows(float[][] perHead, int dim, int start, int count)
    {
        var heads = perHead.Length;
        var rows = new float[count * heads * dim];
        for (var t = 0; t < count; t++)
        {
            for (var h = 0; h < heads; h++)
            {
                perHead[h].AsSpan((start + t) * dim, dim).CopyTo(rows.AsSpan((t * heads + h) * dim));
            }
        }
        return rows;
    }
}

/// <summary>The shape and element type of a method's state beside a cache of the captured length.</summary>
/// <param name="Type">int32 for index state, the attention's element type for summaries.</param>
/// <param name="Rows">Axis 2.</param>
/// <param name="Width">Axis 3.</param>
/// <param name="Slot">"index" or "summary": the op's past_/present_ slots.</param>
internal sealed record StateLayout(TensorElementType Type, long Rows, long Width, string Slot);

/// <summary>One layer's SparseAttention node, lifted out of the patched model into one-node step models.</summary>
internal sealed class LayerStep
{
    /// <summary>The step models' graph input for the method's past state.</summary>
    public const string PastState = "past_state";

    /// <summary>The step models' graph output for the method's present state.</summary>
    public const string PresentState = "present_state";

    /// <summary>The decode step model's selected_keys output.</summary>
    public const string SelectedKeys = "selected_keys";

    private readonly NodeProto _node;
    private readonly IReadOnlyDictionary<int, TensorProto> _constants;

    private LayerStep(NodeProto node, IReadOnlyDictionary<int, TensorProto> constants)
    {
        _node = node;
        _constants = constants;
    }

    /// <summary>Hq.</summary>
    public required int Heads { get; init; }

    /// <summary>Hkv.</summary>
    public required int KvHeads { get; init; }

    /// <summary>D.</summary>
    public required int HeadDim { get; init; }

    /// <summary>Dv.</summary>
    public required int ValueHeadDim { get; init; }

    /// <summary>The attention's element type.</summary>
    public required DataType ElementType { get; init; }

    /// <summary>The method's state, or null for a method without.</summary>
    public required StateLayout? State { get; init; }

    /// <summary>The exact attention of the layer on the captured sequence.</summary>
    public required ExactAttention Reference { get; init; }

    /// <summary>Lifts layer <paramref name="layer"/>'s <paramref name="node"/> out of <paramref name="graph"/>; its constant inputs come along.</summary>
    /// <exception cref="InvalidDataException">A rotary table or calibration input is computed by the graph rather than constant.</exception>
    public static LayerStep Create(GraphProto graph, NodeProto node, SiteActivations site, int layer)
    {
        long? Int(string name) => node.Attribute.FirstOrDefault(a => a.Name == name && a.Type == AttributeProto.Types.AttributeType.Int)?.I;
        float? Float(string name) => node.Attribute.FirstOrDefault(a => a.Name == name && a.Type == AttributeProto.Types.AttributeType.Float)?.F;
        var method = node.Attribute.FirstOrDefault(a => a.Name == "method")?.S.ToStringUtf8() ?? "dense";
        int heads = (int)Int("num_heads")!.Value, kvHeads = (int)Int("kv_num_heads")!.Value;
        if (heads != site.Queries.Length || kvHeads != site.Keys.Length)
        {
            throw new InvalidDataException($"layer {layer}: the SparseAttention node has {heads}/{kvHeads} heads but {site.Queries.Length}/{site.Keys.Length} were captured");
        }

        // Rotary tables and calibration, as the patched model holds them.
        var constants = new Dictionary<int, TensorProto>();
        var slots = new[] { "cos_cache", "sin_cache", "method_data_0", "method_data_1", "method_data_2", "method_data_3" };
        foreach (var slot in slots.Select(SparseAttentionOp.InputIndex).Where(i => i < node.Input.Count && node.Input[i].Length > 0))
        {
            constants[slot] = ConstantValue(graph, node.Input[slot]) ?? throw new InvalidDataException(
                $"layer {layer}: SparseAttention input {SparseAttentionOp.InputNames[slot]} ('{node.Input[slot]}') is computed by the graph; " +
                "recall needs it constant (a rotary table the rewriter derived, a calibration initializer)");
        }
        var elementType = site.Site.ElementType switch
        {
            "float" => DataType.Float,
            "float16" => DataType.Float16,
            "bfloat16" => DataType.Bfloat16,
            var other => throw new InvalidDataException($"layer {layer}: recall does not run {other} attention"),
        };

        var spec = MethodCatalog.Get(method);
        StateLayout? state = null;
        if (spec.State != MethodState.None)
        {
            var hashRounds = constants.TryGetValue(SparseAttentionOp.InputIndex("method_data_0"), out var projections) && method == "hash" ? projections.Dims[1] : 0;
            var width = MethodStateLayout.Width(method, site.HeadDim, Int("rank") ?? site.HeadDim / 4, hashRounds);
            state = new StateLayout(spec.State == MethodState.Index ? TensorElementType.Int32 : AttentionBenchmark.TensorType(elementType),
                MethodStateLayout.Rows(method, site.VisibleKeys.Length, Int("page_size") ?? 16), width, spec.State == MethodState.Index ? "index" : "summary");
        }

        RotaryTables? rotary = null;
        if (Int("do_rotary") == 1)
        {
            var cos = constants[SparseAttentionOp.InputIndex("cos_cache")];
            var sin = constants[SparseAttentionOp.InputIndex("sin_cache")];
            rotary = new RotaryTables(OnnxTensor.ToFloats(cos), OnnxTensor.ToFloats(sin), (int)cos.Dims[^1], Int("rotary_interleaved") == 1);
        }
        var reference = new ExactAttention(site, rotary, Float("scale") ?? 1 / MathF.Sqrt(site.HeadDim), Float("softcap") ?? 0,
            Int("local_window_size") is { } window && window > 0 ? (int)window : 0);
        return new LayerStep(node, constants)
        {
            Heads = heads, KvHeads = kvHeads, HeadDim = site.HeadDim, ValueHeadDim = site.ValueHeadDim, ElementType = elementType, State = state, Reference = reference,
        };
    }

    /// <summary>
    /// The node alone, reading the step inputs <see cref="DecodeStep.Bind"/> binds and its constants; the
    /// method state as <see cref="PastState"/>/<see cref="PresentState"/>; <see cref="SelectedKeys"/> if
    /// <paramref name="reportSelection"/> (decode steps only). position_ids and attention_mask are left
    /// out: one sequence from position 0 takes the op's default positions, and all its keys are valid.
    /// </summary>
    public ModelProto Model(bool reportSelection)
    {
        var type = ElementType;
        var inputs = new List<ValueInfoProto>
        {
            OnnxBuilder.TensorValueInfo("query", type, [1, "sequence", Heads * HeadDim]),
            OnnxBuilder.TensorValueInfo("key", type, [1, "sequence", KvHeads * HeadDim]),
            OnnxBuilder.TensorValueInfo("value", type, [1, "sequence", KvHeads * ValueHeadDim]),
            OnnxBuilder.TensorValueInfo("past_key", type, [1, KvHeads, "capacity", HeadDim]),
            OnnxBuilder.TensorValueInfo("past_value", type, [1, KvHeads, "capacity", ValueHeadDim]),
            OnnxBuilder.TensorValueInfo("seqlens_k", DataType.Int32, [1]),
            OnnxBuilder.TensorValueInfo("total_sequence_length", DataType.Int32, []),
        };
        var slots = Enumerable.Repeat("", SparseAttentionOp.InputNames.Count).ToArray();
        foreach (var input in inputs)
        {
            slots[SparseAttentionOp.InputIndex(input.Name)] = input.Name;
        }
        var initializers = new List<TensorProto>();
        foreach (var (slot, constant) in _constants)
        {
            slots[slot] = SparseAttentionOp.InputNames[slot];
            var copy = constant.Clone();
            copy.Name = slots[slot];
            initializers.Add(copy);
        }
        var outputs = new[] { "output", "present_key", "present_value", "", "", reportSelection ? SelectedKeys : "" };
        var stateType = DataType.Undefined;
        if (State is { } state)
        {
            stateType = state.Type == TensorElementType.Int32 ? DataType.Int32 : type;
            slots[SparseAttentionOp.InputIndex($"past_{state.Slot}")] = PastState;
            outputs[SparseAttentionOp.OutputNames.ToList().IndexOf($"present_{state.Slot}")] = PresentState;
            inputs.Add(OnnxBuilder.TensorValueInfo(PastState, stateType, [1, KvHeads, "state_rows", state.Width]));
        }
        var node = _node.Clone();
        node.Input.Clear();
        node.Input.Add(DecodeStepModel.WithoutTrailingBlanks(slots));
        node.Output.Clear();
        node.Output.Add(DecodeStepModel.WithoutTrailingBlanks(outputs));
        var graphOutputs = outputs.Where(o => o.Length > 0).Select(o => OnnxBuilder.TensorValueInfo(o,
            o == SelectedKeys ? DataType.Bool : o == PresentState ? stateType : type, null));
        var graph = OnnxBuilder.Graph("layer_step", [node], inputs, graphOutputs, initializers);
        return OnnxBuilder.Model(graph, [OnnxBuilder.Opset("", 23), OnnxBuilder.Opset(SparseAttentionOp.Domain, SparseAttentionOp.DomainVersion)]);
    }

    /// <summary>An initializer's or a Constant node's tensor, or null when the graph computes <paramref name="name"/>.</summary>
    private static TensorProto? ConstantValue(GraphProto graph, string name) =>
        graph.Initializer.LastOrDefault(i => i.Name == name)
        ?? graph.Node.FirstOrDefault(n => n.OpType == "Constant" && n.Domain.Length == 0 && n.Output.Contains(name))?.Attribute
            .FirstOrDefault(a => a.Name == "value" && a.Type == AttributeProto.Types.AttributeType.Tensor)?.T;
}

/// <summary>A [max_position, R/2] rotary table pair.</summary>
/// <param name="Cos">cos, row-major.</param>
/// <param name="Sin">sin, row-major.</param>
/// <param name="Half">R/2.</param>
/// <param name="Interleaved">Pairs (x[2i], x[2i+1]) instead of halves (x[i], x[i + R/2]).</param>
internal sealed record RotaryTables(float[] Cos, float[] Sin, int Half, bool Interleaved)
{
    /// <summary>Rotates <paramref name="x"/> to position <paramref name="position"/>, in place.</summary>
    public void Apply(Span<double> x, int position)
    {
        if ((long)(position + 1) * Half > Cos.Length)
        {
            throw new InvalidDataException($"the rotary table has {Cos.Length / Half} positions; position {position} is beyond it");
        }
        for (var i = 0; i < Half; i++)
        {
            double cos = Cos[position * Half + i], sin = Sin[position * Half + i];
            var (a, b) = Interleaved ? (2 * i, 2 * i + 1) : (i, i + Half);
            (x[a], x[b]) = (x[a] * cos - x[b] * sin, x[b] * cos + x[a] * sin);
        }
    }
}

/// <summary>Exact attention probabilities of one layer on the captured sequence, in fp64, with the node's rotary embedding, scale, softcap and window.</summary>
internal sealed class ExactAttention
{
    private readonly SiteActivations _site;
    private readonly RotaryTables? _rotary;
    private readonly double _scale;
    private readonly double _softcap;
    private readonly int _window;
    private readonly double[][] _keys;  // per KV head, post-rotary [T, D]

    /// <summary>Rotates the captured keys once; queries are rotated per position.</summary>
    /// <param name="site">The captured query, key (pre-rotary when <paramref name="rotary"/> is given) and value rows.</param>
    /// <param name="rotary">The node's rotary tables, or null when it does not apply one.</param>
    /// <param name="scale">The node's scale.</param>
    /// <param name="softcap">The node's softcap (0: none).</param>
    /// <param name="window">The node's local_window_size (0: none).</param>
    public ExactAttention(SiteActivations site, RotaryTables? rotary, double scale, double softcap, int window)
    {
        (_site, _rotary, _scale, _softcap, _window) = (site, rotary, scale, softcap, window);
        var d = site.HeadDim;
        var length = site.VisibleKeys.Length;
        _keys = site.Keys.Select(rows =>
        {
            var rotated = Array.ConvertAll(rows, x => (double)x);
            for (var t = 0; rotary is not null && t < length; t++)
            {
                rotary.Apply(rotated.AsSpan(t * d, d), t);
            }
            return rotated;
        }).ToArray();
    }

    /// <summary>The mean over query heads of the softmax mass at <paramref name="position"/> of the keys <paramref name="selected"/> ([Hkv, T]) marks for the head's group.</summary>
    public double Recall(int position, bool[] selected)
    {
        int d = _site.HeadDim, heads = _site.Queries.Length, group = heads / _keys.Length, length = _site.VisibleKeys.Length;
        var first = _window > 0 ? Math.Max(0, position - _window + 1) : 0;
        var scores = new double[position + 1 - first];
        var query = new double[d];
        double total = 0;
        for (var h = 0; h < heads; h++)
        {
            for (var i = 0; i < d; i++)
            {
                query[i] = _site.Queries[h][position * d + i];
            }
            _rotary?.Apply(query, position);
            var keys = _keys[h / group];
            for (var j = first; j <= position; j++)
            {
                double dot = 0;
                for (var i = 0; i < d; i++)
                {
                    dot += query[i] * keys[j * d + i];
                }
                var score = _scale * dot;
                scores[j - first] = _softcap > 0 ? _softcap * Math.Tanh(score / _softcap) : score;
            }
            var max = scores.Max();
            double sum = 0, kept = 0;
            for (var j = first; j <= position; j++)
            {
                var weight = Math.Exp(scores[j - first] - max);
                sum += weight;
                kept += selected[(h / group) * length + j] ? weight : 0;
            }
            total += kept / sum;
        }
        return total / heads;
    }
}
