using System.Globalization;
using Onnx;

namespace OrtSparse.GraphRewriter;

/// <summary>
/// Attention written out in ONNX ops, as torch.onnx.export emits for eager attention and (at opset 18)
/// for SDPA: <c>MatMul(Softmax(MatMul(Q, Kᵀ)·scale + mask), V)</c>, anchored at the last MatMul. The
/// scale may be a Mul or Div of the scores or √scale multiplied into both Q and K; the mask is added or
/// chosen by a Where, and must be checked causal (<see cref="AttentionOperands.CausalProblem"/>); a
/// NaN guard after the Softmax (Where(IsNaN(p), 0, p)) is what the op does for rows with nothing to
/// see. Kᵀ may be a Transpose or the exporter's reshape-transpose-reshape; K and V may pass through
/// GQA's repeat_kv; Q and K may pass through a rotary embedding (<see cref="RotaryPatterns"/>), which
/// moves into the op with tables derived from the graph. Every node only the attention used is removed.
/// </summary>
internal sealed class UnfusedAttentionForm : IAttentionForm
{
    private const string Kind = "unfused MatMul/Softmax attention";

    public static UnfusedAttentionForm Instance { get; } = new();

    private UnfusedAttentionForm()
    {
    }

    /// <summary>A MatMul whose left operand is a Softmax's output (or its NaN guard).</summary>
    public bool Matches(NodeProto node, GraphIndex graph) =>
        node.OpType == "MatMul" && Opsets.IsOnnxDomain(node.Domain) && node.Input.Count == 2 && SoftmaxOf(graph, node.Input[0]) is not null;

    /// <summary>What the site computes, as far as the rewriter can map it.</summary>
    private sealed record Analysis(TracedOperand? Query, TracedOperand? Key, TracedOperand? Value, double Scale, bool IsCausal,
        DerivedRotary? Rotary, string? Problem, IReadOnlyList<string> Notes);

    public AttentionSite Recognize(ModelProto model, int nodeIndex, GraphTypes types)
    {
        var node = model.Graph.Node[nodeIndex];
        var analysis = Analyze(model, node, types, PatchOptions.DefaultMaxLength);
        var (q, k, v) = (analysis.Query, analysis.Key, analysis.Value);
        var elementType = q is null ? TensorProto.Types.DataType.Undefined : types.Find(q.Value)?.ElementType ?? TensorProto.Types.DataType.Undefined;
        var problem = analysis.Problem ?? SiteFacts.ElementTypeProblem(elementType);
        var oneLayout = q?.Layout is "BHSD" or "BSHD" && k?.Layout == q.Layout && v?.Layout == q.Layout;
        return new AttentionSite(nodeIndex, SiteFacts.Label(node, nodeIndex), Kind, oneLayout ? 4 : 0, q?.Heads, k?.Heads, q?.HeadDim,
            SiteFacts.ElementTypeName(elementType), null, null, null, null, problem)
        {
            Notes = analysis.Notes,
            QueryKeyValue = problem is null && oneLayout ? [q!.Value, k!.Value, v!.Value] : null,
            QueryKeyValueSequenceFirst = oneLayout && q!.Layout == "BSHD",
        };
    }

    public SiteRewrite Rewrite(ModelProto model, AttentionSite site, GraphTypes types, MethodConfig method, NameAllocator names, long rotaryPositions)
    {
        var node = model.Graph.Node[site.NodeIndex];
        var analysis = Analyze(model, node, types, rotaryPositions);
        var (q, k, v) = (analysis.Query!, analysis.Key!, analysis.Value!);
        var glue = new GraphGlue(model, names, site.NodeName);
        var inputs = new Dictionary<string, string>
        {
            ["query"] = q.ToHidden(glue, "query"),
            ["key"] = k.ToHidden(glue, "key"),
            ["value"] = v.ToHidden(glue, "value"),
        };
        analysis.Rotary?.Fuse(model.Graph, names, new HashSet<int>()).Wire(inputs, glue);
        var output = glue.Value("output_bsh");
        var settings = new AttentionSettings(q.Heads!.Value, k.Heads!.Value, analysis.IsCausal)
        {
            Scale = (float)analysis.Scale,
            DoRotary = analysis.Rotary is not null,
            RotaryInterleaved = analysis.Rotary?.Query.Interleaved ?? false,
        };
        var attention = SparseAttentionNode.Create(node, inputs, new Dictionary<string, string> { ["output"] = output }, settings, method);
        var after = new GraphGlue(model, names, site.NodeName);
        after.HiddenToHeads(output, "output", q.Heads.Value, node.Output[0]);
        // The scores, mask, softmax, rotary and repeat_kv nodes only the attention read are pruned by the patcher.
        return new SiteRewrite([.. glue.Nodes, attention, .. after.Nodes], new HashSet<int>());
    }

    /// <summary>The Softmax (last axis) whose probabilities <paramref name="value"/> holds, directly or through Where(IsNaN(p), 0, p).</summary>
    private static NodeProto? SoftmaxOf(GraphIndex graph, string value)
    {
        if (graph.Producer(value, "Where") is { } guard && graph.Producer(guard.Input[0], "IsNaN") is { } isNan && isNan.Input[0] == guard.Input[2])
        {
            value = guard.Input[2];
        }
        return graph.Producer(value, "Softmax");
    }

    private static Analysis Analyze(ModelProto model, NodeProto node, GraphTypes types, long rotaryPositions)
    {
        var graph = new GraphIndex(model.Graph);
        var evaluator = new GraphEvaluator(model.Graph, types);
        var notes = new List<string>();
        Analysis Fail(string problem, TracedOperand? q = null, TracedOperand? k = null, TracedOperand? v = null) =>
            new(q, k, v, 1, false, null, problem, notes);

        var softmax = SoftmaxOf(graph, node.Input[0])!;
        var softmaxAxis = softmax.IntAttribute("axis") ?? ((Opsets.OnnxVersion(model) ?? 13) >= 13 ? -1 : 1);
        if (softmaxAxis is not (-1 or 3))
        {
            return Fail($"Softmax '{softmax.Name}' normalises axis {softmaxAxis}, not the keys' (last) axis");
        }
        var scores = Scores(graph, evaluator, model.Graph, softmax.Input[0]);
        if (scores.Problem is { } scoreProblem)
        {
            return Fail(scoreProblem);
        }
        var q = AttentionOperands.Trace(graph, evaluator, types, scores.Query!, "BHSD", allowRepeat: false, allowRotary: true);
        var k = AttentionOperands.Trace(graph, evaluator, types, scores.KeyTransposed!, "BHDS", allowRepeat: true, allowRotary: true);
        var v = AttentionOperands.Trace(graph, evaluator, types, node.Input[1], "BHSD", allowRepeat: true, allowRotary: false);
        var problem = q.Problem("query") ?? k.Problem("key") ?? v.Problem("value")
            ?? (v.Scale != 1 ? "the value is scaled before attention" : null)
            ?? (q.HeadDim != k.HeadDim ? $"the query's head size ({q.HeadDim}) differs from the key's ({k.HeadDim})" : null)
            ?? (v.Heads != k.Heads ? $"the key has {k.Heads} heads but the value {v.Heads}" : null)
            ?? SiteFacts.HeadCountProblem(q.Heads!.Value, k.Heads!.Value, "query heads", "key/value heads")
            ?? (k.Heads != q.Heads && !k.Repeated ? $"{q.Heads} query heads read {k.Heads} key heads without repeat_kv" : null);
        if (problem is not null)
        {
            return Fail(problem, q, k, v);
        }
        var scale = scores.Scale * q.Scale * k.Scale;
        notes.Add(FormattableString.Invariant($"scores MatMul(Q, Kᵀ) scaled by {scale:g6}, {scores.MaskNote}, Softmax '{softmax.Name}'"));
        if (k.Repeated)
        {
            notes.Add($"GQA repeat_kv folded: {q.Heads} query heads read {k.Heads} key/value heads");
        }

        DerivedRotary? rotary = null;
        if (q.Rotary is not null || k.Rotary is not null)
        {
            if (q.Rotary is null || k.Rotary is null)
            {
                return Fail($"only the {(q.Rotary is null ? "key" : "query")} passes through a rotary embedding ({(q.Rotary ?? k.Rotary)!.Form})", q, k, v);
            }
            rotary = RotaryPatterns.Derive(evaluator, model.Graph, q.Rotary, k.Rotary, q.HeadDim, rotaryPositions, out var rotaryProblem);
            if (rotary is null)
            {
                return Fail($"rotary embedding ({q.Rotary.Form}) cannot move into the op: {rotaryProblem}", q, k, v);
            }
            notes.Add($"rotary embedding fused ({q.Rotary.Form}): SparseAttention applies it (do_rotary = 1) from cos/sin tables of {rotary.Positions} positions computed from the graph, positions following the cache");
        }
        return new Analysis(q, k, v, scale, scores.Mask is not null, rotary, null, notes);
    }

    /// <summary>The scores' operands, scale and mask.</summary>
    private sealed record ScoreChain(string? Query, string? KeyTransposed, double Scale, string? Mask, string MaskNote, string? Problem);

    /// <summary>Walks from the Softmax's input back to MatMul(Q, Kᵀ) over scale factors and one checked causal mask.</summary>
    private static ScoreChain Scores(GraphIndex graph, GraphEvaluator evaluator, GraphProto model, string value)
    {
        double scale = 1;
        string? mask = null;
        var maskNote = "no mask (every key visible)";
        ScoreChain Fail(string problem) => new(null, null, 1, null, maskNote, problem);
        for (var step = 0; step < 16; step++)
        {
            var node = graph.Producer(value);
            if (node is null || !Opsets.IsOnnxDomain(node.Domain))
            {
                return Fail($"the scores '{value}' do not come from a MatMul of the query and key");
            }
            if (node.OpType == "MatMul")
            {
                return new ScoreChain(node.Input[0], node.Input[1], scale, mask, maskNote, null);
            }
            if (AttentionOperands.ScalarFactor(evaluator, node) is ({ } input, var factor))
            {
                (value, scale) = (input, scale * factor);
                continue;
            }
            (string Mask, MaskKind Kind, string Scores)? found = null;
            var why = "";
            if (node.OpType == "Add")
            {
                foreach (var side in new[] { 0, 1 })
                {
                    if (evaluator.TryEvaluate(node.Input[side], GraphEvaluator.SequenceShapes(model, 1, 3), out var reason) is not null)
                    {
                        found = (node.Input[side], MaskKind.Additive, node.Input[1 - side]);
                        break;
                    }
                    why = reason!;
                }
                if (found is null)
                {
                    return Fail($"neither operand of Add '{node.Name}' before the Softmax is a mask the rewriter can compute from the input shapes (the second: {why})");
                }
            }
            else if (node.OpType == "Where")
            {
                if (evaluator.Constant(node.Input[2]) is { Data: [<= AttentionOperands.HiddenBelow] })
                {
                    found = (node.Input[0], MaskKind.KeepWhereTrue, node.Input[1]);
                }
                else if (evaluator.Constant(node.Input[1]) is { Data: [<= AttentionOperands.HiddenBelow] })
                {
                    found = (node.Input[0], MaskKind.HideWhereTrue, node.Input[2]);
                }
                else
                {
                    return Fail($"Where '{node.Name}' before the Softmax does not fill hidden scores with a large negative constant");
                }
            }
            if (found is not { } masked)
            {
                return Fail($"the scores pass through {node.OpType} node '{node.Name}' before the Softmax, which the rewriter does not map");
            }
            if (mask is not null)
            {
                return Fail($"the scores take a second mask ('{masked.Mask}' after '{mask}')");
            }
            if (AttentionOperands.CausalProblem(evaluator, model, masked.Mask, masked.Kind) is { } notCausal)
            {
                return Fail(notCausal);
            }
            (mask, value) = (masked.Mask, masked.Scores);
            maskNote = $"mask '{mask}' ({(masked.Kind == MaskKind.Additive ? "added" : "by Where")}) checked causal, becomes is_causal = 1";
        }
        return Fail("the chain from the scores to the Softmax is longer than the rewriter follows");
    }
}
