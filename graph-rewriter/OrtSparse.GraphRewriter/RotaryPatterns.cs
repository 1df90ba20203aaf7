using Onnx;
using OrtSparse.Onnx;

namespace OrtSparse.GraphRewriter;

/// <summary>
/// One rotary embedding found on a query or key in [batch, heads, sequence, head] layout: the
/// rotate-half decomposition (<c>x·cos + concat(−x₂, x₁)·sin</c> with Slice/Neg/Concat/Mul/Add) or an
/// ONNX RotaryEmbedding node without position_ids, possibly on the first <see cref="RotaryDim"/>
/// dims only (<c>concat(rotate(x[..., :R]), x[..., R:])</c>, GPT-NeoX's partial rotary).
/// </summary>
/// <param name="Input">The value before rotation (the whole head).</param>
/// <param name="Cos">The cos values the rotation multiplies by.</param>
/// <param name="Sin">The sin values.</param>
/// <param name="RotaryDim">R, the rotated dims (null when not known from constants; the tables tell).</param>
/// <param name="Interleaved">Rotates pairs (x[2i], x[2i+1]) instead of halves.</param>
/// <param name="HalfWidth">True when cos and sin have R/2 columns (ONNX RotaryEmbedding), false for R columns whose halves repeat (rotate-half).</param>
/// <param name="Form">How inspect names it.</param>
internal sealed record RotaryMatch(string Input, string Cos, string Sin, long? RotaryDim, bool Interleaved, bool HalfWidth, string Form);

/// <summary>
/// A rotary embedding of query and key that SparseAttention can apply itself: cos/sin tables of
/// <see cref="Positions"/> rows computed from the graph (its inv_freq constants and position
/// arithmetic), row p holding position p.
/// </summary>
internal sealed record DerivedRotary(RotaryMatch Query, RotaryMatch Key, float[] Cos, float[] Sin, long Positions, long HalfRotaryDim)
{
    /// <summary>Adds the tables as initializers (one pair per distinct table, shared by the layers) and returns the fusion.</summary>
    public FusedRotary Fuse(GraphProto graph, NameAllocator names, IReadOnlySet<int> absorbed)
    {
        var cos = Table(graph, names, "cos", Cos);
        var sin = Table(graph, names, "sin", Sin);
        return new FusedRotary(Query.Input, Key.Input, cos, sin, null, HalfRotaryDim, Query.Interleaved, absorbed) { FollowsCache = true };
    }

    private string Table(GraphProto graph, NameAllocator names, string role, float[] values)
    {
        var hash = values.Aggregate(2166136261u, (h, v) => (h ^ (uint)BitConverter.SingleToInt32Bits(v)) * 16777619u);
        var wanted = $"ortsparse/rotary_{role}_{Positions}x{HalfRotaryDim}_{hash:x8}";
        if (graph.Initializer.Any(i => i.Name == wanted))
        {
            return wanted; // an earlier layer added the same table
        }
        var name = names.Fresh(wanted);
        graph.Initializer.Add(OnnxTensor.Create(name, values, Positions, HalfRotaryDim));
        return name;
    }
}

/// <summary>Recognises rotary embeddings written out in ONNX ops and derives the tables SparseAttention needs.</summary>
internal static class RotaryPatterns
{
    /// <summary>The rotary embedding producing <paramref name="value"/> ([B, H, S, D]), or null.</summary>
    public static RotaryMatch? Match(GraphIndex graph, GraphEvaluator evaluator, string value)
    {
        // Partial rotary: concat(rotate(x[..., :R]), x[..., R:]) along the last axis.
        if (graph.Producer(value, "Concat") is { Input.Count: 2 } concat && IsLastAxis(concat.IntAttribute("axis"))
            && Core(graph, evaluator, concat.Input[0]) is { } core
            && SliceOf(graph, evaluator, core.Input) is ({ } whole, 0, { } rotated)
            && SliceOf(graph, evaluator, concat.Input[1]) is ({ } rest, { } restStart, _) && rest == whole && restStart == rotated)
        {
            return core with { Input = whole, RotaryDim = rotated, Form = $"partial {core.Form} on the first {rotated} dims" };
        }
        return Core(graph, evaluator, value);
    }

    /// <summary>A rotation of the whole of its input: an ONNX RotaryEmbedding node or the rotate-half decomposition.</summary>
    private static RotaryMatch? Core(GraphIndex graph, GraphEvaluator evaluator, string value)
    {
        if (graph.Producer(value, "RotaryEmbedding") is { } node && node.Input.Count >= 3 && node.OptionalInput(3) is null)
        {
            return new RotaryMatch(node.Input[0], node.Input[1], node.Input[2], node.IntAttribute("rotary_embedding_dim") is > 0 and var r ? r : null,
                node.IntAttribute("interleaved") == 1, HalfWidth: true, "ONNX RotaryEmbedding");
        }
        if (graph.Producer(value, "Add") is not { } add)
        {
            return null;
        }
        foreach (var (direct, rotated) in new[] { (add.Input[0], add.Input[1]), (add.Input[1], add.Input[0]) })
        {
            if (graph.Producer(direct, "Mul") is not { } cosMul || graph.Producer(rotated, "Mul") is not { } sinMul)
            {
                continue;
            }
            foreach (var (x, cos) in Operands(cosMul))
            {
                foreach (var (halves, sin) in Operands(sinMul))
                {
                    if (RotateHalfOf(graph, evaluator, halves) == x)
                    {
                        return new RotaryMatch(x, cos, sin, null, Interleaved: false, HalfWidth: false, "rotate-half rotary (Slice/Neg/Concat/Mul/Add)");
                    }
                }
            }
        }
        return null;
    }

    private static (string, string)[] Operands(NodeProto binary) => [(binary.Input[0], binary.Input[1]), (binary.Input[1], binary.Input[0])];

    /// <summary>x when <paramref name="value"/> is concat(−x[..., h:], x[..., :h]) along the last axis with h half of x's last dim, else null.</summary>
    private static string? RotateHalfOf(GraphIndex graph, GraphEvaluator evaluator, string value)
    {
        if (graph.Producer(value, "Concat") is not { Input.Count: 2 } concat || !IsLastAxis(concat.IntAttribute("axis"))
            || graph.Producer(concat.Input[0], "Neg") is not { } neg
            || SliceOf(graph, evaluator, neg.Input[0]) is not ({ } upper, { } half, var upperEnd)
            || SliceOf(graph, evaluator, concat.Input[1]) is not ({ } lower, 0, { } lowerEnd)
            || upper != lower || lowerEnd != half || (upperEnd is { } end && end != 2 * half))
        {
            return null;
        }
        return upper;
    }

    /// <summary>(data, start, end) of a Slice of the last axis with step 1 and constant bounds (end null when it runs to the end), else null.</summary>
    private static (string? Data, long? Start, long? End) SliceOf(GraphIndex graph, GraphEvaluator evaluator, string value)
    {
        if (graph.Producer(value, "Slice") is not { } slice || slice.Input.Count < 4
            || evaluator.Constant(slice.Input[1]) is not { Data.Length: 1 } starts || evaluator.Constant(slice.Input[2]) is not { Data.Length: 1 } ends
            || evaluator.Constant(slice.Input[3]) is not { Data.Length: 1 } axes || !IsLastAxis((long)axes.Scalar)
            || (slice.OptionalInput(4) is { } stepsName && evaluator.Constant(stepsName) is not { Data: [1] }))
        {
            return (null, null, null);
        }
        var end = ends.Scalar;
        return (slice.Input[0], (long)starts.Scalar, end >= int.MaxValue ? null : (long)end);
    }

    /// <summary>−1, or 3 for the 4-D values rotary works on.</summary>
    private static bool IsLastAxis(long? axis) => axis is -1 or 3;

    /// <summary>
    /// The cos/sin tables of the rotations of <paramref name="query"/> and <paramref name="key"/>, checked to
    /// follow positions: the values the graph computes for a sequence of <paramref name="positions"/> tokens
    /// are the table, and for a batch of 2 shorter sequences every row equals the table's row of its position.
    /// </summary>
    /// <returns>The tables, or null with the reason in <paramref name="problem"/>.</returns>
    public static DerivedRotary? Derive(GraphEvaluator evaluator, GraphProto graph, RotaryMatch query, RotaryMatch key, long? headDim, long positions,
        out string? problem)
    {
        problem = null;
        if (query.HalfWidth != key.HalfWidth || query.Interleaved != key.Interleaved || query.RotaryDim != key.RotaryDim)
        {
            problem = $"the query is rotated by {query.Form}, the key by {key.Form}";
            return null;
        }
        var tables = new List<float[]>();
        foreach (var (value, role) in new[] { (query.Cos, "query cos"), (query.Sin, "query sin"), (key.Cos, "key cos"), (key.Sin, "key sin") })
        {
            if (Table(evaluator, graph, value, query.HalfWidth, positions, out problem) is not { } table)
            {
                problem = $"the {role} values '{value}' are not a table of positions: {problem}";
                return null;
            }
            tables.Add(table);
        }
        if (!tables[0].SequenceEqual(tables[2]) || !tables[1].SequenceEqual(tables[3]))
        {
            problem = "the query and the key are rotated by different cos/sin values";
            return null;
        }
        var half = tables[0].Length / positions;
        if (tables[1].Length != tables[0].Length)
        {
            problem = "cos and sin have different widths";
            return null;
        }
        var rotaryDim = query.RotaryDim ?? 2 * half;
        if (rotaryDim != 2 * half || (headDim is { } d && rotaryDim > d))
        {
            problem = $"the rotation covers {rotaryDim} dims but its cos/sin values have {2 * half} (head size {headDim?.ToString() ?? "unknown"})";
            return null;
        }
        return new DerivedRotary(query, key, tables[0], tables[1], positions, half);
    }

    /// <summary>The [positions, R/2] table a cos or sin value holds, or null with the reason.</summary>
    private static float[]? Table(GraphEvaluator evaluator, GraphProto graph, string value, bool halfWidth, long positions, out string? problem)
    {
        if (evaluator.TryEvaluate(value, GraphEvaluator.SequenceShapes(graph, 1, positions), out problem) is not { } full)
        {
            return null;
        }
        if (full.Shape.Length < 2 || full.Shape[^2] != positions || full.Shape[..^2].Any(d => d != 1))
        {
            problem = $"for one sequence of {positions} tokens they have shape [{string.Join(", ", full.Shape)}], not [1, …, {positions}, width]";
            return null;
        }
        var width = (int)full.Shape[^1];
        var columns = halfWidth ? width : width / 2;
        if (!halfWidth && (width % 2 != 0 || Enumerable.Range(0, (int)positions * width).Any(i => i % width >= columns && full.Data[i] != full.Data[i - columns])))
        {
            problem = "the two halves of their last axis differ, as rotate-half needs them equal";
            return null;
        }
        const long batch = 2, length = 5;
        if (evaluator.TryEvaluate(value, GraphEvaluator.SequenceShapes(graph, batch, length), out problem) is not { } sample)
        {
            return null;
        }
        if (sample.Shape.Length != full.Shape.Length || sample.Shape[^2] != length || sample.Shape[^1] != width || sample.Shape[..^2].Any(d => d is not (1 or batch)))
        {
            problem = $"for {batch} sequences of {length} tokens they have shape [{string.Join(", ", sample.Shape)}]";
            return null;
        }
        for (long i = 0; i < sample.Data.Length; i++)
        {
            var row = i / width % length;
            if (Math.Abs(sample.Data[i] - full.Data[row * width + i % width]) > 1e-6)
            {
                problem = $"for {batch} sequences of {length} tokens row {row} is not the row of position {row}";
                return null;
            }
        }
        return Enumerable.Range(0, (int)positions * width).Where(i => i % width < columns).Select(i => (float)full.Data[i]).ToArray();
    }
}
