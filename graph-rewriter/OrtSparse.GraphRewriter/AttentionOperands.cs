using Onnx;

namespace OrtSparse.GraphRewriter;

/// <summary>
/// A query, key or value traced back from where attention reads it to the projection it came from:
/// through transposes, scalar scale factors, GQA's repeat_kv and a rotary embedding.
/// </summary>
/// <param name="Value">The value reached, before rotation and repetition.</param>
/// <param name="Layout">Its axes: "BHSD" ([batch, heads, sequence, head]) or "BSHD"; anything else cannot be read by the op.</param>
/// <param name="Heads">Its heads (declared dim), when known.</param>
/// <param name="HeadDim">Its head size (declared dim), when known.</param>
/// <param name="Scale">The product of the scalar factors passed on the way.</param>
/// <param name="Repeated">True when GQA's repeat_kv (Unsqueeze/Expand/Reshape) was passed.</param>
/// <param name="Rotary">The rotary embedding passed, or null.</param>
internal sealed record TracedOperand(string Value, string Layout, int? Heads, int? HeadDim, double Scale, bool Repeated, RotaryMatch? Rotary)
{
    /// <summary>Why the op cannot read it, or null.</summary>
    public string? Problem(string role) =>
        Layout is not ("BHSD" or "BSHD") ? $"the {role} reaches '{Value}' with its axes as {Layout}; SparseAttention reads [batch, sequence, heads·head] values"
        : Heads is null || HeadDim is null ? $"the heads and head size of the {role} '{Value}' are unknown: give it a shape with static heads and head size (value_info)"
        : null;

    /// <summary>The value as the op reads it, [B, S, H·D]: glue reshapes (BSHD) or transposes and reshapes (BHSD).</summary>
    public string ToHidden(GraphGlue glue, string role) => Layout == "BSHD"
        ? glue.Op("Reshape", $"{role}_bsh", [Value, glue.Int64s($"{role}_bsh_shape", 0, 0, -1)])
        : glue.HeadsToHidden(Value, role);
}

/// <summary>Where a mask enters the scores: added, or choosing between the scores and a fill value.</summary>
internal enum MaskKind
{
    /// <summary>Added to the scores: 0 keeps a key, a large negative value hides it.</summary>
    Additive,

    /// <summary>A boolean, true where the key is kept.</summary>
    KeepWhereTrue,

    /// <summary>A boolean, true where the key is hidden.</summary>
    HideWhereTrue,
}

/// <summary>Matching helpers for attention written out in ONNX ops (and for ONNX Attention's operands).</summary>
internal static class AttentionOperands
{
    /// <summary>Additive mask values at or below this hide a key (exp underflows to 0 in fp32 and fp16).</summary>
    public const double HiddenBelow = -1e4;

    /// <summary>
    /// Traces <paramref name="value"/>, whose axes are <paramref name="layout"/> (e.g. "BHDS" for Kᵀ), back
    /// through Transpose, Mul/Div by scalar constants, the reshape-transpose-reshape that swaps the last two
    /// axes, repeat_kv (when <paramref name="allowRepeat"/>) and one rotary embedding (when <paramref name="allowRotary"/>).
    /// </summary>
    public static TracedOperand Trace(GraphIndex graph, GraphEvaluator evaluator, GraphTypes types, string value, string layout, bool allowRepeat, bool allowRotary)
    {
        double scale = 1;
        var repeated = false;
        RotaryMatch? rotary = null;
        for (var step = 0; step < 32; step++)
        {
            var node = graph.Producer(value);
            if (node is null || !Opsets.IsOnnxDomain(node.Domain))
            {
                break;
            }
            if (node.OpType == "Transpose" && node.Attribute("perm")?.Ints is { Count: 4 } perm)
            {
                var source = new char[4];
                for (var i = 0; i < 4; i++)
                {
                    source[perm[i]] = layout[i];
                }
                (value, layout) = (node.Input[0], new string(source));
                continue;
            }
            if (ScalarFactor(evaluator, node) is ({ } input, var factor))
            {
                (value, scale) = (input, scale * factor);
                continue;
            }
            if (SwapsLastAxes(graph, evaluator, node) is { } swapped)
            {
                (value, layout) = (swapped, layout[..2] + layout[3] + layout[2]);
                continue;
            }
            if (allowRepeat && !repeated && layout == "BHSD" && RepeatKvSource(graph, evaluator, node) is { } source4)
            {
                (value, repeated) = (source4, true);
                continue;
            }
            if (allowRotary && rotary is null && layout == "BHSD" && RotaryPatterns.Match(graph, evaluator, value) is { } match)
            {
                (value, rotary) = (match.Input, match);
                continue;
            }
            break;
        }
        var dims = types.Find(value)?.Dims;
        var (headsAxis, headAxis) = layout == "BSHD" ? (2, 3) : (1, 3);
        return new TracedOperand(value, layout, dims is { Count: 4 } ? SiteFacts.ToInt(dims[headsAxis]) : null,
            dims is { Count: 4 } ? SiteFacts.ToInt(dims[headAxis]) : null, scale, repeated, rotary);
    }

    /// <summary>(x, c) for Mul(x, c), Mul(c, x) and Div(x, 1/c) with c a scalar constant, else (null, 1).</summary>
    public static (string? Input, double Factor) ScalarFactor(GraphEvaluator evaluator, NodeProto node)
    {
        if (node.OpType is "Mul" or "Div" && node.Input.Count == 2)
        {
            for (var side = node.OpType == "Mul" ? 0 : 1; side < 2; side++)
            {
                if (evaluator.Constant(node.Input[side]) is { Data: [var c] } && c != 0)
                {
                    return (node.Input[1 - side], node.OpType == "Mul" ? c : 1 / c);
                }
            }
        }
        return (null, 1);
    }

    /// <summary>
    /// x for Reshape(Transpose(Reshape(x, [-1, S, D]), [0, 2, 1]), [B, H, D, S]) with both shapes computed
    /// from x's shape (how the exporter transposes a 4-D key for SDPA), checked on a sample shape; else null.
    /// </summary>
    private static string? SwapsLastAxes(GraphIndex graph, GraphEvaluator evaluator, NodeProto node)
    {
        if (node.OpType != "Reshape" || graph.Producer(node.Input[0], "Transpose") is not { } transpose
            || transpose.Attribute("perm")?.Ints is not { Count: 3 } perm || perm[0] != 0 || perm[1] != 2 || perm[2] != 1
            || graph.Producer(transpose.Input[0], "Reshape") is not { } inner)
        {
            return null;
        }
        long[] sample = [2, 3, 5, 7];
        var shapes = new Dictionary<string, long[]> { [inner.Input[0]] = sample };
        if (evaluator.TryEvaluate(inner.Input[1], shapes, out _)?.Longs is not { } flat || evaluator.TryEvaluate(node.Input[1], shapes, out _)?.Longs is not { } back)
        {
            return null;
        }
        return flat is [-1 or 6, 5, 7] && back.SequenceEqual([2, 3, 7, 5]) ? inner.Input[0] : null;
    }

    /// <summary>
    /// y for repeat_kv: Reshape(Expand(Unsqueeze(y, axis 2), [B, Hkv, n, S, D]), [B, Hkv·n, S, D]), checked
    /// on the expand and reshape shapes (evaluated for a sample batch and sequence) against y's heads.
    /// </summary>
    private static string? RepeatKvSource(GraphIndex graph, GraphEvaluator evaluator, NodeProto node)
    {
        if (node.OpType != "Reshape" || graph.Producer(node.Input[0], "Expand") is not { } expand
            || graph.Producer(expand.Input[0], "Unsqueeze") is not { } unsqueeze)
        {
            return null;
        }
        var axes = unsqueeze.OptionalInput(1) is { } axesName ? evaluator.Constant(axesName)?.Longs : unsqueeze.Attribute("axes")?.Ints.ToArray();
        if (axes is not [2])
        {
            return null;
        }
        const long batch = 3, sequence = 5;
        var shapes = GraphEvaluator.SequenceShapes(graph.Graph, batch, sequence);
        if (evaluator.TryEvaluate(expand.Input[1], shapes, out _)?.Longs is not [batch, var heads, var repeats, sequence, var dim]
            || evaluator.TryEvaluate(node.Input[1], shapes, out _)?.Longs is not { } merged
            || !merged.SequenceEqual([batch, heads * repeats, sequence, dim]))
        {
            return null;
        }
        return unsqueeze.Input[0];
    }

    /// <summary>
    /// Why <paramref name="mask"/> is not the causal mask (key j visible from query i iff j ≤ i), or null:
    /// evaluated for sequences of 3 and 6 tokens (batch 1 and 2) from the shapes of the graph's inputs, so a
    /// mask that reads an input's values (padding) or shifts positions is refused.
    /// </summary>
    public static string? CausalProblem(GraphEvaluator evaluator, GraphProto graph, string mask, MaskKind kind)
    {
        foreach (var (batch, length) in new[] { (1L, 3L), (2L, 6L) })
        {
            if (evaluator.TryEvaluate(mask, GraphEvaluator.SequenceShapes(graph, batch, length), out var why) is not { } values)
            {
                return $"the mask '{mask}' cannot be checked to be causal: {why}";
            }
            var shape = values.Shape;
            if (shape.Length is < 2 or > 4 || shape[^1] != length || shape[^2] != length || (shape.Length == 4 && shape[0] != 1 && shape[0] != batch))
            {
                return $"the mask '{mask}' has shape [{string.Join(", ", shape)}] for {batch} sequences of {length} tokens, not [batch or 1, heads or 1, {length}, {length}]";
            }
            for (long flat = 0; flat < values.Data.Length; flat++)
            {
                var (i, j) = (flat / length % length, flat % length);
                var v = values.Data[flat];
                bool? visible = kind switch
                {
                    MaskKind.Additive => v == 0 ? true : v <= HiddenBelow ? false : null,
                    MaskKind.KeepWhereTrue => v != 0,
                    _ => v == 0,
                };
                if (visible is null)
                {
                    return $"the additive mask '{mask}' holds {v:g4}, neither 0 nor a value that hides a key";
                }
                if (visible != (j <= i))
                {
                    return $"the mask '{mask}' is not causal: for {batch} sequences of {length} tokens query {i} {(visible.Value ? "sees" : "does not see")} key {j}";
                }
            }
        }
        return null;
    }
}
