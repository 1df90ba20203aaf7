using Onnx;
using OrtSparse.Onnx;

namespace OrtSparse.GraphRewriter;

/// <summary>
/// RotaryEmbedding nodes that rotate the query and the key of one attention site, which
/// SparseAttention applies itself (do_rotary = 1) so that its methods index the keys before rotation
/// and positions follow the cache.
/// </summary>
/// <param name="Query">The query before rotation.</param>
/// <param name="Key">The key before rotation.</param>
/// <param name="CosCache">
/// The shared cos values: a [max_position, R/2] table indexed by <paramref name="PositionIds"/>, or,
/// without position ids, the rows of this step, [batch or 1, sequence_length, R/2].
/// </param>
/// <param name="SinCache">The shared sin values, shaped as <paramref name="CosCache"/>.</param>
/// <param name="PositionIds">The shared [batch, sequence_length] position ids, or null when the cos and sin values are this step's rows.</param>
/// <param name="HalfRotaryDim">R/2, the last dimension of the cos and sin values.</param>
/// <param name="Interleaved">Rotates pairs (x[2i], x[2i+1]) instead of halves.</param>
/// <param name="Absorbed">The rotary nodes nothing else reads, removed with the site.</param>
internal sealed record FusedRotary(string Query, string Key, string CosCache, string SinCache, string? PositionIds, long HalfRotaryDim,
    bool Interleaved, IReadOnlySet<int> Absorbed)
{
    /// <summary>
    /// True when <see cref="CosCache"/> and <see cref="SinCache"/> are [max_position, R/2] tables whose row p is
    /// position p and the positions are the op's default (past length + i), so no position_ids are wired.
    /// </summary>
    public bool FollowsCache { get; init; }

    /// <summary>
    /// Sets the op's cos_cache, sin_cache and position_ids. Rows of this step become a table of
    /// (batch or 1)·sequence_length rows, row b·S + i holding sequence b's row i, and the position
    /// ids index it row by row: the op then rotates exactly as the RotaryEmbedding nodes did,
    /// whether the rows cover the batch or broadcast one sequence's rows over it.
    /// </summary>
    public void Wire(Dictionary<string, string> inputs, GraphGlue glue)
    {
        if (PositionIds is { } positions)
        {
            (inputs["cos_cache"], inputs["sin_cache"], inputs["position_ids"]) = (CosCache, SinCache, positions);
            return;
        }
        if (FollowsCache)
        {
            (inputs["cos_cache"], inputs["sin_cache"]) = (CosCache, SinCache);
            return;
        }
        var tableShape = glue.Int64s("rotary_table_shape", -1, HalfRotaryDim);
        inputs["cos_cache"] = glue.Op("Reshape", "cos_table", [CosCache, tableShape]);
        inputs["sin_cache"] = glue.Op("Reshape", "sin_table", [SinCache, tableShape]);
        var rows = glue.Op("Shape", "rotary_rows", [CosCache], attributes: OnnxBuilder.IntAttribute("end", 2));
        var rowCount = glue.Op("ReduceProd", "rotary_row_count", [rows], attributes: OnnxBuilder.IntAttribute("keepdims", 0));
        var rowIndices = glue.Op("Range", "rotary_row_indices", [glue.Int64Scalar("zero", 0), rowCount, glue.Int64Scalar("one", 1)]);
        inputs["position_ids"] = glue.Op("Reshape", "rotary_position_ids", [rowIndices, rows]);
    }
}

/// <summary>What a site tells the fusion about the query and key it reads.</summary>
/// <param name="Query">The site's query input.</param>
/// <param name="Key">The site's key input.</param>
/// <param name="NumHeads">Query heads.</param>
/// <param name="KvNumHeads">Key heads.</param>
/// <param name="HeadDim">The head size, when known.</param>
/// <param name="Rank">3 for [B, S, H·D] query and key, 4 for [B, H, S, D].</param>
internal sealed record RotaryTarget(string Query, string Key, int NumHeads, int KvNumHeads, int? HeadDim, int Rank);

/// <summary>
/// Decides whether the rotary embeddings feeding a site's query and key can move into
/// SparseAttention: <c>com.microsoft.RotaryEmbedding</c> (input, position_ids, cos_cache, sin_cache)
/// and ONNX <c>RotaryEmbedding</c> (opset 23: X, cos_cache, sin_cache, optional position_ids).
/// </summary>
internal static class RotaryEmbeddingFusion
{
    /// <summary>The outcome for one site: a fusion, or null with the reason in <paramref name="Note"/> (null when no rotary feeds the site).</summary>
    /// <param name="Fusion">The fusion, when possible.</param>
    /// <param name="Note">What inspect reports about the rotary embedding.</param>
    internal sealed record Outcome(FusedRotary? Fusion, string? Note);

    /// <summary>Where one dialect of RotaryEmbedding takes its inputs.</summary>
    private sealed record Dialect(string Name, int CosCacheInput, int SinCacheInput, int PositionIdsInput, int RequiredInputs)
    {
        public static readonly Dialect Contrib = new("com.microsoft.RotaryEmbedding", 2, 3, 1, 4);
        public static readonly Dialect Onnx = new("RotaryEmbedding", 1, 2, 3, 3);
    }

    /// <summary>Looks at the producers of the site's query and key.</summary>
    /// <param name="graph">The main graph.</param>
    /// <param name="types">Declared types.</param>
    /// <param name="target">The site's query, key and head layout.</param>
    /// <param name="blocker">Why the site's own semantics forbid moving the rotation (e.g. a bias added after it), or null.</param>
    public static Outcome Analyze(GraphProto graph, GraphTypes types, RotaryTarget target, string? blocker)
    {
        var queryRotary = Producer(graph, target.Query);
        var keyRotary = Producer(graph, target.Key);
        if (queryRotary is null && keyRotary is null)
        {
            return new Outcome(null, null);
        }
        if (queryRotary is null || keyRotary is null)
        {
            return NotFused($"only the {(queryRotary is null ? "key" : "query")} comes from a RotaryEmbedding node");
        }
        var (qi, q, dialect) = queryRotary.Value;
        var (ki, k, keyDialect) = keyRotary.Value;
        var problem = blocker
            ?? (dialect != keyDialect ? $"the query comes from {dialect.Name} but the key from {keyDialect.Name}" : null)
            ?? Mismatch(q, k, dialect)
            ?? TableProblem(q, dialect, types)
            ?? HeadProblem(q, dialect, types, target, target.NumHeads, "query")
            ?? HeadProblem(k, dialect, types, target, target.KvNumHeads, "key");
        if (problem is not null)
        {
            return NotFused(problem);
        }
        var absorbed = new HashSet<int>(new[] { qi, ki }.Where(i => SiteFacts.Uses(graph, graph.Node[i].Output[0]) == 1));
        var fusion = new FusedRotary(q.Input[0], k.Input[0], q.Input[dialect.CosCacheInput], q.Input[dialect.SinCacheInput],
            q.OptionalInput(dialect.PositionIdsInput), HalfRotaryDim(q, dialect, types), q.IntAttribute("interleaved") == 1, absorbed);
        var kept = absorbed.Count == 2 ? "removed" : "kept for their other readers";
        var rows = fusion.PositionIds is null
            ? "; their cos/sin rows of this step ([batch or 1, sequence_length, R/2]) become a table the op indexes row by row"
            : "";
        return new Outcome(fusion, $"rotary embedding fused: SparseAttention applies RotaryEmbedding nodes '{SiteFacts.Label(q, qi)}' and '{SiteFacts.Label(k, ki)}' (do_rotary = 1), which are {kept}{rows}");
    }

    private static Outcome NotFused(string reason) =>
        new(null, $"rotary embedding not fused (SparseAttention reads the rotated query and key): {reason}");

    private static (int Index, NodeProto Node, Dialect Dialect)? Producer(GraphProto graph, string value)
    {
        for (var i = 0; i < graph.Node.Count; i++)
        {
            var node = graph.Node[i];
            if (node.Output.Contains(value))
            {
                var dialect = node.OpType != "RotaryEmbedding" ? null
                    : node.Domain == Opsets.MicrosoftDomain ? Dialect.Contrib
                    : Opsets.IsOnnxDomain(node.Domain) ? Dialect.Onnx
                    : null;
                return dialect is not null && node.Input.Count >= dialect.RequiredInputs && node.Output[0] == value ? (i, node, dialect) : null;
            }
        }
        return null;
    }

    /// <summary>Why the two nodes do not rotate query and key alike, or null.</summary>
    private static string? Mismatch(NodeProto q, NodeProto k, Dialect dialect)
    {
        if (q.OptionalInput(dialect.PositionIdsInput) != k.OptionalInput(dialect.PositionIdsInput)
            || q.Input[dialect.CosCacheInput] != k.Input[dialect.CosCacheInput] || q.Input[dialect.SinCacheInput] != k.Input[dialect.SinCacheInput])
        {
            return "the query and key RotaryEmbedding nodes read different position_ids, cos_cache or sin_cache";
        }
        return (q.IntAttribute("interleaved") ?? 0) != (k.IntAttribute("interleaved") ?? 0)
            || (q.IntAttribute("rotary_embedding_dim") ?? 0) != (k.IntAttribute("rotary_embedding_dim") ?? 0)
            ? "the query and key RotaryEmbedding nodes differ in interleaved or rotary_embedding_dim"
            : null;
    }

    /// <summary>Why the op cannot read the node's positions and cos/sin values as its own, or null.</summary>
    private static string? TableProblem(NodeProto rotary, Dialect dialect, GraphTypes types)
    {
        if (dialect == Dialect.Contrib)
        {
            if (rotary.FloatAttribute("scale") is { } scale && scale != 1)
            {
                return $"RotaryEmbedding scale ({scale}) is not 1";
            }
            if (rotary.IntAttribute("is_packed_batching") is { } packedBatching && packedBatching != 0)
            {
                return "RotaryEmbedding uses packed batching";
            }
        }
        var cosRank = rotary.OptionalInput(dialect.PositionIdsInput) is null ? 3 : 2;
        if (cosRank == 2)
        {
            var positions = types.Find(rotary.Input[dialect.PositionIdsInput]);
            if (positions?.Rank != 2)
            {
                return positions?.Rank is { } rank
                    ? $"position_ids has rank {rank} (a start offset); SparseAttention takes [batch, sequence_length] positions"
                    : "the rank of position_ids is unknown: give it a [batch, sequence_length] shape";
            }
        }
        var cos = types.Find(rotary.Input[dialect.CosCacheInput]);
        if (cos?.Dims is not { } dims || dims.Count != cosRank || dims[^1] is null)
        {
            return cosRank == 2
                ? "the shape of cos_cache is unknown: give it a static [max_position, rotary_dim / 2] shape"
                : cos?.Rank is { } rank && rank != 3
                    ? $"without position_ids, cos_cache has rank {rank}; RotaryEmbedding takes this step's rows [batch, sequence_length, rotary_dim / 2]"
                    : "the shape of cos_cache is unknown: without position_ids give it a [batch, sequence_length, rotary_dim / 2] shape with a static last dimension";
        }
        return null;
    }

    /// <summary>R/2: the static last dimension of cos_cache, which <see cref="TableProblem"/> has checked.</summary>
    private static long HalfRotaryDim(NodeProto rotary, Dialect dialect, GraphTypes types) =>
        (long)types.Find(rotary.Input[dialect.CosCacheInput])!.Dims![^1]!;

    /// <summary>Why the node's split into heads and rotary size differ from what the op does to the site's query or key, or null.</summary>
    private static string? HeadProblem(NodeProto rotary, Dialect dialect, GraphTypes types, RotaryTarget target, int heads, string role)
    {
        var halfRotary = HalfRotaryDim(rotary, dialect, types);
        var rotaryDim = rotary.IntAttribute("rotary_embedding_dim") ?? 0;
        var numHeads = rotary.IntAttribute("num_heads") ?? 0;
        if (dialect == Dialect.Contrib && rotaryDim == 0)
        {
            // com.microsoft.RotaryEmbedding then splits the hidden size into heads of 2·cos_cache.shape[1] and rotates them whole.
            return target.HeadDim == 2 * halfRotary
                ? null
                : $"RotaryEmbedding rotates heads of {2 * halfRotary} (2·cos_cache dim 1) but the attention's heads have {target.HeadDim?.ToString() ?? "an unknown"} size";
        }
        // ONNX RotaryEmbedding splits a 3-D input into num_heads heads (a 4-D input is split already); so does the
        // contrib op once rotary_embedding_dim is set.
        if ((dialect == Dialect.Contrib || target.Rank == 3) && numHeads != heads)
        {
            return $"the {role} RotaryEmbedding's num_heads ({(numHeads == 0 ? "unset" : numHeads.ToString())}) differs from the attention's {role} heads ({heads})";
        }
        long? rotated = rotaryDim == 0 ? target.HeadDim : rotaryDim;
        if (rotated is null)
        {
            return "the attention's head size is unknown, so whether RotaryEmbedding rotates whole heads cannot be checked: give Q a static head size";
        }
        if (rotated != 2 * halfRotary)
        {
            return $"RotaryEmbedding rotates {rotated} dims (rotary_embedding_dim, or the head size when 0) but cos_cache holds {2 * halfRotary} (2·its last dim); SparseAttention takes the rotary size from cos_cache";
        }
        return target.HeadDim is null || rotated <= target.HeadDim
            ? null
            : $"rotary_embedding_dim ({rotated}) exceeds the head size ({target.HeadDim})";
    }
}
