using Onnx;

namespace OrtSparse.GraphRewriter;

/// <summary>
/// The ONNX <c>Attention</c> operator (opset 23 and 24), as torch.onnx.export(dynamo=True) emits
/// for scaled_dot_product_attention, and the ONNX <c>RotaryEmbedding</c> nodes (opset 23) that
/// often rotate its Q and K, which move into the op. Inputs: Q, K, V, attn_mask, past_key,
/// past_value, nonpad_kv_seqlen (24); outputs: Y, present_key, present_value, qk_matmul_output.
/// </summary>
internal sealed class OnnxAttentionForm : IAttentionForm
{
    private const int MaskInput = 3, PastKeyInput = 4, PastValueInput = 5, NonpadKvSeqlenInput = 6;
    private const int PresentKeyOutput = 1, PresentValueOutput = 2, QkMatmulOutput = 3;

    public static OnnxAttentionForm Instance { get; } = new();

    private OnnxAttentionForm()
    {
    }

    public bool Matches(NodeProto node, GraphIndex graph) => node.OpType == "Attention" && Opsets.IsOnnxDomain(node.Domain);

    public AttentionSite Recognize(ModelProto model, int nodeIndex, GraphTypes types)
    {
        var node = model.Graph.Node[nodeIndex];
        var opset = Opsets.OnnxVersion(model) ?? 0;
        var q = types.Find(node.Input[0]);
        var k = node.Input.Count > 1 ? types.Find(node.Input[1]) : null;
        var rank = q?.Rank ?? k?.Rank ?? 0;
        int? numHeads = (int?)node.IntAttribute("q_num_heads") ?? (rank == 4 ? SiteFacts.ToInt(q?.Dims?[1]) : null);
        int? kvNumHeads = (int?)node.IntAttribute("kv_num_heads") ?? (rank == 4 ? SiteFacts.ToInt(k?.Dims?[1]) : null);
        int? headDim = rank == 4 ? SiteFacts.ToInt(q?.Dims?[3]) : rank == 3 && numHeads is > 0 && q?.Dims?[2] is { } hidden ? (int)(hidden / numHeads.Value) : null;
        var elementType = q?.ElementType ?? TensorProto.Types.DataType.Undefined;

        string? reason = null;
        if (node.Input.Count < 3 || node.Input.Take(3).Any(string.IsNullOrEmpty))
        {
            reason = "Attention needs Q, K and V inputs";
        }
        else if (opset < 23)
        {
            reason = $"Attention is defined from opset 23 on, but the model imports opset {opset}";
        }
        else if (node.OptionalOutput(QkMatmulOutput) is not null)
        {
            reason = "qk_matmul_output (output 3) is used; SparseAttention does not expose attention scores";
        }
        else if (node.OptionalInput(NonpadKvSeqlenInput) is not null)
        {
            reason = "nonpad_kv_seqlen (an external KV cache) is not supported yet";
        }
        else if ((node.OptionalInput(PastKeyInput) is null) != (node.OptionalInput(PastValueInput) is null))
        {
            reason = "past_key and past_value must be given together";
        }
        else if (SiteFacts.ElementTypeProblem(elementType) is { } typeProblem)
        {
            reason = typeProblem;
        }
        else if (rank is not (3 or 4))
        {
            reason = rank == 0
                ? "the rank of Q is unknown: give the graph's inputs shapes or run shape inference first"
                : $"Q has rank {rank}; Attention takes rank 3 or 4";
        }
        else if (numHeads is null || kvNumHeads is null)
        {
            reason = "the number of query or key/value heads is unknown: set q_num_heads/kv_num_heads or give Q and K static head dims";
        }
        else
        {
            reason = SiteFacts.HeadCountProblem(numHeads.Value, kvNumHeads.Value, "q_num_heads", "kv_num_heads");
        }

        var rotary = reason is null ? Rotary(model.Graph, node, types, rank, numHeads!.Value, kvNumHeads!.Value, headDim) : null;
        var plan = reason is null ? Decomposed(model, node, types, rank, rotary!, PatchOptions.DefaultMaxLength) : null;
        var notes = new List<string>();
        if (plan?.Note is { } decomposedNote)
        {
            notes.Add(decomposedNote);
        }
        else if (rotary?.Note is { } note)
        {
            notes.Add(note);
        }
        if (reason is null && CausalMask(model, node, types) is { } mask)
        {
            notes.Add($"attn_mask '{mask}' checked causal: becomes is_causal = 1");
        }
        var traced = plan?.Query is not null;
        return new AttentionSite(nodeIndex, SiteFacts.Label(node, nodeIndex), $"onnx.Attention-{(opset >= 24 ? 24 : 23)}", rank,
            numHeads, traced ? plan!.Key!.Heads : kvNumHeads, headDim, SiteFacts.ElementTypeName(elementType),
            node.OptionalInput(PastKeyInput), node.OptionalInput(PastValueInput),
            node.OptionalOutput(PresentKeyOutput), node.OptionalOutput(PresentValueOutput), reason)
        {
            Notes = notes,
            QueryKeyValue = node.Input.Count < 3 ? null
                : traced && plan!.Query!.Layout is "BHSD" or "BSHD" && plan.Key!.Layout == plan.Query.Layout && plan.Value!.Layout == plan.Query.Layout
                    ? [plan.Query.Value, plan.Key.Value, plan.Value.Value]
                : traced ? null
                : [rotary?.Fusion?.Query ?? node.Input[0], rotary?.Fusion?.Key ?? node.Input[1], node.Input[2]],
            QueryKeyValueSequenceFirst = traced && plan!.Query!.Layout == "BSHD",
        };
    }

    /// <summary>SparseAttention, with layout changes around it for 4-D inputs and the rotary embedding moved in.</summary>
    public SiteRewrite Rewrite(ModelProto model, AttentionSite site, GraphTypes types, MethodConfig method, NameAllocator names, long rotaryPositions)
    {
        var node = model.Graph.Node[site.NodeIndex];
        var rotary = Rotary(model.Graph, node, types, site.Rank, site.NumHeads!.Value, site.KvNumHeads!.Value, site.HeadDim);
        var plan = Decomposed(model, node, types, site.Rank, rotary, rotaryPositions);
        var fusion = plan?.Query is not null ? plan.Rotary?.Fuse(model.Graph, names, new HashSet<int>()) : rotary.Fusion;
        var glue = new GraphGlue(model, names, site.NodeName);
        string ToBsh(string input, string role) => site.Rank == 3 ? input : glue.HeadsToHidden(input, role);

        var inputs = plan?.Query is { } query
            ? new Dictionary<string, string>
            {
                ["query"] = query.ToHidden(glue, "query"),
                ["key"] = plan.Key!.ToHidden(glue, "key"),
                ["value"] = plan.Value!.ToHidden(glue, "value"),
            }
            : new Dictionary<string, string>
            {
                ["query"] = ToBsh(fusion?.Query ?? node.Input[0], "query"),
                ["key"] = ToBsh(fusion?.Key ?? node.Input[1], "key"),
                ["value"] = ToBsh(node.Input[2], "value"),
            };
        SparseAttentionNode.AddIfGiven(inputs, "past_key", site.PastKey);
        SparseAttentionNode.AddIfGiven(inputs, "past_value", site.PastValue);
        var causalMask = CausalMask(model, node, types);
        if (causalMask is null)
        {
            SparseAttentionNode.AddIfGiven(inputs, "attention_mask", node.OptionalInput(MaskInput));
        }
        fusion?.Wire(inputs, glue);

        var output = site.Rank == 3 ? node.Output[0] : glue.Value("output_bsh");
        var outputs = new Dictionary<string, string> { ["output"] = output };
        SparseAttentionNode.AddIfGiven(outputs, "present_key", site.PresentKey);
        SparseAttentionNode.AddIfGiven(outputs, "present_value", site.PresentValue);

        var settings = new AttentionSettings(site.NumHeads.Value, site.KvNumHeads.Value, causalMask is not null || node.IntAttribute("is_causal") == 1)
        {
            Scale = node.FloatAttribute("scale"),
            Softcap = node.FloatAttribute("softcap") ?? 0,
            DoRotary = fusion is not null,
            RotaryInterleaved = fusion?.Interleaved ?? false,
        };
        var nodes = new List<NodeProto>(glue.Nodes) { SparseAttentionNode.Create(node, inputs, outputs, settings, method) };
        if (site.Rank == 4)
        {
            var after = new GraphGlue(model, names, site.NodeName);
            after.HiddenToHeads(output, "output", site.NumHeads.Value, node.Output[0]);
            nodes.AddRange(after.Nodes);
        }
        return new SiteRewrite(nodes, plan?.Query is not null ? new HashSet<int>() : fusion?.Absorbed ?? new HashSet<int>());
    }

    /// <summary>
    /// What the exporter wrote around a 4-D Attention without a cache whose rotary embedding the usual fusion
    /// cannot move: Q, K and V traced back over repeat_kv (which becomes the op's grouped heads) and a rotary
    /// embedding whose tables are derived from the graph (<see cref="RotaryPatterns"/>). Null when there is
    /// nothing to trace (3-D, a cache, no repeat_kv or rotary); otherwise either the operands or a note on why not.
    /// </summary>
    private static TracedPlan? Decomposed(ModelProto model, NodeProto node, GraphTypes types, int rank, RotaryEmbeddingFusion.Outcome rotary, long rotaryPositions)
    {
        if (rank != 4 || rotary.Fusion is not null || node.OptionalInput(PastKeyInput) is not null)
        {
            return null;
        }
        var graph = new GraphIndex(model.Graph);
        var evaluator = new GraphEvaluator(model.Graph, types);
        var q = AttentionOperands.Trace(graph, evaluator, types, node.Input[0], "BHSD", allowRepeat: false, allowRotary: true);
        var k = AttentionOperands.Trace(graph, evaluator, types, node.Input[1], "BHSD", allowRepeat: true, allowRotary: true);
        var v = AttentionOperands.Trace(graph, evaluator, types, node.Input[2], "BHSD", allowRepeat: true, allowRotary: false);
        if (!k.Repeated && q.Rotary is null && k.Rotary is null)
        {
            return null;
        }
        TracedPlan NotTraced(string why) => new(null, null, null, null, $"{rotary.Note ?? "Q, K and V are used as they are"}; tracing them further: {why}");
        var problem = q.Problem("query") ?? k.Problem("key") ?? v.Problem("value")
            ?? (q.Scale != 1 || k.Scale != 1 || v.Scale != 1 ? "a query, key or value is scaled before Attention" : null)
            ?? (v.Heads != k.Heads || v.Repeated != k.Repeated ? "the key and value are not repeated alike" : null)
            ?? (q.Rotary is null != (k.Rotary is null) ? $"only the {(q.Rotary is null ? "key" : "query")} is rotated" : null);
        if (problem is not null)
        {
            return NotTraced(problem);
        }
        DerivedRotary? derived = null;
        if (q.Rotary is not null)
        {
            derived = RotaryPatterns.Derive(evaluator, model.Graph, q.Rotary, k.Rotary!, q.HeadDim, rotaryPositions, out var rotaryProblem);
            if (derived is null)
            {
                return NotTraced($"rotary embedding ({q.Rotary.Form}) cannot move into the op: {rotaryProblem}");
            }
        }
        var notes = new List<string>();
        if (k.Repeated)
        {
            notes.Add($"GQA repeat_kv before Attention folded: {q.Heads} query heads read {k.Heads} key/value heads");
        }
        if (derived is not null)
        {
            notes.Add($"rotary embedding fused ({q.Rotary!.Form}): SparseAttention applies it (do_rotary = 1) from cos/sin tables of {derived.Positions} positions computed from the graph, positions following the cache");
        }
        return new TracedPlan(q, k, v, derived, string.Join("; ", notes));
    }

    /// <summary>The traced operands of <see cref="Decomposed"/>, or only a note when they cannot be used.</summary>
    private sealed record TracedPlan(TracedOperand? Query, TracedOperand? Key, TracedOperand? Value, DerivedRotary? Rotary, string? Note);

    /// <summary>The attn_mask of a node without a cache that is checked to be the causal mask (so is_causal = 1 replaces it), or null.</summary>
    private static string? CausalMask(ModelProto model, NodeProto node, GraphTypes types)
    {
        if (node.OptionalInput(MaskInput) is not { } mask || node.OptionalInput(PastKeyInput) is not null || node.IntAttribute("is_causal") == 1)
        {
            return null;
        }
        var kind = types.Find(mask)?.ElementType == TensorProto.Types.DataType.Bool ? MaskKind.KeepWhereTrue : MaskKind.Additive;
        return AttentionOperands.CausalProblem(new GraphEvaluator(model.Graph, types), model.Graph, mask, kind) is null ? mask : null;
    }

    /// <summary>The ONNX RotaryEmbedding nodes rotating Q and K, with the heads Attention splits them into.</summary>
    private static RotaryEmbeddingFusion.Outcome Rotary(GraphProto graph, NodeProto node, GraphTypes types, int rank, int numHeads, int kvNumHeads, int? headDim) =>
        RotaryEmbeddingFusion.Analyze(graph, types, new RotaryTarget(node.Input[0], node.Input[1], numHeads, kvNumHeads, headDim, rank), null);
}
