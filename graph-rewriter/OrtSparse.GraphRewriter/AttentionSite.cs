namespace OrtSparse.GraphRewriter;

/// <summary>One attention computation found in a model, and whether the rewriter can replace it.</summary>
/// <param name="NodeIndex">Index of the node in the main graph.</param>
/// <param name="NodeName">The node's name (may be empty in the model; then a generated label).</param>
/// <param name="Kind">The form it was found in, e.g. "onnx.Attention-23" or "com.microsoft.GroupQueryAttention".</param>
/// <param name="Rank">3 for [B, S, H·D] inputs, 4 for [B, H, S, D], 0 when unknown.</param>
/// <param name="NumHeads">Query heads, when known.</param>
/// <param name="KvNumHeads">Key/value heads, when known.</param>
/// <param name="HeadDim">Query/key head size, when known.</param>
/// <param name="ElementType">The element type of the query, e.g. "float".</param>
/// <param name="PastKey">The past-key input, if the site has a cache.</param>
/// <param name="PastValue">The past-value input, if the site has a cache.</param>
/// <param name="PresentKey">The present-key output, if used.</param>
/// <param name="PresentValue">The present-value output, if used.</param>
/// <param name="UnsupportedReason">Why the site cannot be replaced; null when it can.</param>
public sealed record AttentionSite(
    int NodeIndex,
    string NodeName,
    string Kind,
    int Rank,
    int? NumHeads,
    int? KvNumHeads,
    int? HeadDim,
    string ElementType,
    string? PastKey,
    string? PastValue,
    string? PresentKey,
    string? PresentValue,
    string? UnsupportedReason)
{
    /// <summary>True when the rewriter can replace this site.</summary>
    public bool CanReplace => UnsupportedReason is null;

    /// <summary>
    /// What replacing the site involves besides the node itself (nodes fused into the op, glue
    /// inserted around it), or why a neighbour that could have been fused is kept; empty when nothing.
    /// </summary>
    public IReadOnlyList<string> Notes { get; init; } = [];

    /// <summary>
    /// The query, key and value the SparseAttention node reads, as values of the original graph
    /// (before a rotary embedding that moves into the op), in the site's <see cref="Rank"/> layout;
    /// null when the op reads values only the rewrite computes (packed QKV split apart, a bias added).
    /// </summary>
    public IReadOnlyList<string>? QueryKeyValue { get; init; }

    /// <summary>
    /// True when the <see cref="QueryKeyValue"/> values are [B, S, H, D] (a rank-4 site whose heads the graph moves
    /// first only after the values it reads); false when they follow <see cref="Rank"/>.
    /// </summary>
    public bool QueryKeyValueSequenceFirst { get; init; }
}
