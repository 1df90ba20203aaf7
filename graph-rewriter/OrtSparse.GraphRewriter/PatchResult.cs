using Onnx;

namespace OrtSparse.GraphRewriter;

/// <summary>What patch does with one replaceable site.</summary>
/// <param name="Layer">The layer number: the site's position among the replaceable sites, in graph order.</param>
/// <param name="Site">The site.</param>
/// <param name="Method">Its method (<see cref="PatchOptions.MethodFor"/>).</param>
public sealed record LayerPlan(int Layer, AttentionSite Site, MethodConfig Method)
{
    /// <summary>
    /// The state graph input the method adds beside the cache (<c>past_key_values.N.ortsparse_summary</c>
    /// or <c>…_index</c>, with a numeric suffix should that name be taken), or null when the method keeps
    /// no state or the site has no cache.
    /// </summary>
    public string? StateInput => MethodWiring.StateNames(Site, Method)?.Input;

    /// <summary>The matching state graph output (<c>present.N.ortsparse_…</c>), or null.</summary>
    public string? StateOutput => MethodWiring.StateNames(Site, Method)?.Output;
}

/// <summary>The state a method keeps beside one layer's KV cache (docs/ops.md, "Methods"): [batch, KV heads, length, width].</summary>
/// <param name="Slot">"index" (the op's past_index/present_index) or "summary" (past_summary/present_summary).</param>
/// <param name="Input">The graph input; its initializer is an empty default [1, KV heads, 0, width].</param>
/// <param name="Output">The graph output to feed back as <paramref name="Input"/> next step, or null when the site has no present cache.</param>
/// <param name="ElementType">"int32" for index state; the attention's element type for summaries.</param>
/// <param name="KvNumHeads">Axis 1.</param>
/// <param name="Width">Axis 3.</param>
public sealed record MethodStateTensors(string Slot, string Input, string? Output, string ElementType, int KvNumHeads, long Width);

/// <summary>The rotary embedding a SparseAttention node applies (do_rotary = 1).</summary>
/// <param name="Interleaved">Rotates pairs (x[2i], x[2i+1]) instead of halves.</param>
/// <param name="TablePositions">Rows of its static cos/sin table (the positions it covers), or null when the table's length is not static or the rows are this step's.</param>
public sealed record RotaryInOp(bool Interleaved, long? TablePositions);

/// <summary>A replaced site: its plan and what the rewrite gave its SparseAttention node.</summary>
/// <param name="Plan">The layer, site and method.</param>
/// <param name="State">The method's state beside the cache, or null.</param>
/// <param name="Rotary">The rotary embedding the op applies, or null.</param>
/// <param name="SharedBufferCache">
/// True for a cache with GroupQueryAttention's semantics (seqlens_k and total_sequence_length; past and
/// present may be one buffer); false for a cache the op concatenates (present = past followed by the new keys).
/// </param>
public sealed record PatchedLayer(LayerPlan Plan, MethodStateTensors? State, RotaryInOp? Rotary, bool SharedBufferCache)
{
    /// <summary>True when the rewriter gave the site its cache (<see cref="PatchOptions.AddCache"/>).</summary>
    public bool CacheAdded { get; init; }
}

/// <summary>The patched model and what was done to each site.</summary>
/// <param name="Model">A new model; the input model is unchanged.</param>
/// <param name="Layers">The replaced sites, by layer.</param>
/// <param name="Left">Sites left as they were (only with <see cref="PatchOptions.LeaveUnsupported"/>).</param>
public sealed record PatchResult(ModelProto Model, IReadOnlyList<PatchedLayer> Layers, IReadOnlyList<AttentionSite> Left)
{
    /// <summary>Sites replaced by SparseAttention, by layer.</summary>
    public IReadOnlyList<AttentionSite> Replaced => Layers.Select(l => l.Plan.Site).ToList();
}
