using Onnx;

namespace OrtSparse.GraphRewriter;

/// <summary>
/// One way models express attention (an operator, possibly with the nodes around it). A form
/// recognises its sites, says why one cannot be replaced, and produces the nodes that replace it.
/// </summary>
internal interface IAttentionForm
{
    /// <summary>True when <paramref name="node"/> is the anchor node of this form (<paramref name="graph"/> tells its neighbours).</summary>
    bool Matches(NodeProto node, GraphIndex graph);

    /// <summary>Describes the site anchored at node <paramref name="nodeIndex"/> of the main graph.</summary>
    AttentionSite Recognize(ModelProto model, int nodeIndex, GraphTypes types);

    /// <summary>
    /// The nodes that replace a replaceable <paramref name="site"/> (one of them the SparseAttention
    /// node) and the other nodes it absorbs; adds the initializers it needs to the graph.
    /// </summary>
    SiteRewrite Rewrite(ModelProto model, AttentionSite site, GraphTypes types, MethodConfig method, NameAllocator names, long rotaryPositions);
}

/// <summary>What replacing one site does to the main graph.</summary>
/// <param name="Nodes">Nodes that take the anchor node's place, in order; exactly one is the SparseAttention node.</param>
/// <param name="Absorbed">Indices of other nodes the replacement makes redundant (e.g. a fused rotary embedding), removed with the anchor.</param>
internal sealed record SiteRewrite(IReadOnlyList<NodeProto> Nodes, IReadOnlySet<int> Absorbed)
{
    /// <summary>The SparseAttention node among <see cref="Nodes"/>.</summary>
    public NodeProto Attention => Nodes.Single(n => n.Domain == SparseAttentionOp.Domain && n.OpType == SparseAttentionOp.OpType);
}

/// <summary>Every form the rewriter knows, in the order they are tried.</summary>
internal static class AttentionForms
{
    public static IReadOnlyList<IAttentionForm> All { get; } =
        [OnnxAttentionForm.Instance, GroupQueryAttentionForm.Instance, MultiHeadAttentionForm.Instance, UnfusedAttentionForm.Instance];

    /// <summary>The form anchored at <paramref name="node"/>, or null.</summary>
    public static IAttentionForm? Of(NodeProto node, GraphIndex graph) => All.FirstOrDefault(f => f.Matches(node, graph));
}
