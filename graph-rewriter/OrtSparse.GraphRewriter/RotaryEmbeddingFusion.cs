using Onnx;

namespace OrtSparse.GraphRewriter;

/// <summary>
/// <c>com.microsoft.RotaryEmbedding</c> nodes that rotate the query and the key of one attention
/// site, which SparseAttention applies itself (do_rotary = 1) so that its methods index the keys
/// before rotation and positions follow the cache.
/// </summary>
/// <param name="Query">The query before rotation.</param>
/// <param name="Key">The key before rotation.</param>
/// <param name="PositionIds">The shared [batch, sequence] position ids.</param>
/// <param name="CosCache">The shared cos table, [max_position, R/2].</param>
/// <param name="SinCache">The shared sin table.</param>
/// <param name="Interleaved">Rotates pairs (x[2i], x[2i+1]) instead of halves.</param>
/// <param name="Absorbed">The rotary nodes nothing else reads, removed with the site.</param>
internal sealed record FusedRotary(string Query, string Key, string PositionIds, string CosCache, string SinCache, bool Interleaved, IReadOnlySet<int> Absorbed);

/// <summary>Decides whether the rotary embeddings feeding a site's query and key can move into SparseAttention.</summary>
internal static class RotaryEmbeddingFusion
{
    private const int InputInput = 0, PositionIdsInput = 1, CosCacheInput = 2, SinCacheInput = 3;

    /// <summary>The outcome for one site: a fusion, or null with the reason in <paramref name="Note"/> (null when no rotary feeds the site).</summary>
    /// <param name="Fusion">The fusion, when possible.</param>
    /// <param name="Note">What inspect reports about the rotary embedding.</param>
    internal sealed record Outcome(FusedRotary? Fusion, string? Note);

    /// <summary>Looks at the producers of <paramref name="query"/> and <paramref name="key"/>, the inputs of one site.</summary>
    /// <param name="graph">The main graph.</param>
    /// <param name="types">Declared types.</param>
    /// <param name="query">The site's query input.</param>
    /// <param name="key">The site's key input.</param>
    /// <param name="numHeads">The site's heads; a partial rotary must split the hidden size into as many.</param>
    /// <param name="headDim">The site's head size, when known.</param>
    /// <param name="blocker">Why the site's own semantics forbid moving the rotation (e.g. a bias added after it), or null.</param>
    public static Outcome Analyze(GraphProto graph, GraphTypes types, string query, string key, int numHeads, int? headDim, string? blocker)
    {
        var queryRotary = Producer(graph, query);
        var keyRotary = Producer(graph, key);
        if (queryRotary is null && keyRotary is null)
        {
            return new Outcome(null, null);
        }
        if (queryRotary is null || keyRotary is null)
        {
            return NotFused($"only the {(queryRotary is null ? "key" : "query")} comes from a RotaryEmbedding node");
        }
        var (qi, q) = queryRotary.Value;
        var (ki, k) = keyRotary.Value;
        var problem = blocker ?? Mismatch(q, k) ?? Unsupported(q, types, numHeads, headDim);
        if (problem is not null)
        {
            return NotFused(problem);
        }
        var absorbed = new HashSet<int>(new[] { qi, ki }.Where(i => SiteFacts.Uses(graph, graph.Node[i].Output[0]) == 1));
        var fusion = new FusedRotary(q.Input[InputInput], k.Input[InputInput], q.Input[PositionIdsInput], q.Input[CosCacheInput],
            q.Input[SinCacheInput], q.IntAttribute("interleaved") == 1, absorbed);
        var kept = absorbed.Count == 2 ? "removed" : "kept for their other readers";
        return new Outcome(fusion, $"rotary embedding fused: SparseAttention applies RotaryEmbedding nodes '{SiteFacts.Label(q, qi)}' and '{SiteFacts.Label(k, ki)}' (do_rotary = 1), which are {kept}");
    }

    private static Outcome NotFused(string reason) =>
        new(null, $"rotary embedding not fused (SparseAttention reads the rotated query and key): {reason}");

    private static (int Index, NodeProto Node)? Producer(GraphProto graph, string value)
    {
        for (var i = 0; i < graph.Node.Count; i++)
        {
            var node = graph.Node[i];
            if (node.Output.Contains(value))
            {
                return node.OpType == "RotaryEmbedding" && node.Domain == Opsets.MicrosoftDomain && node.Input.Count >= 4 && node.Output[0] == value
                    ? (i, node)
                    : null;
            }
        }
        return null;
    }

    /// <summary>Why the two nodes do not rotate query and key alike, or null.</summary>
    private static string? Mismatch(NodeProto q, NodeProto k)
    {
        if (q.Input[PositionIdsInput] != k.Input[PositionIdsInput] || q.Input[CosCacheInput] != k.Input[CosCacheInput] || q.Input[SinCacheInput] != k.Input[SinCacheInput])
        {
            return "the query and key RotaryEmbedding nodes read different position_ids, cos_cache or sin_cache";
        }
        return (q.IntAttribute("interleaved") ?? 0) != (k.IntAttribute("interleaved") ?? 0)
            || (q.IntAttribute("rotary_embedding_dim") ?? 0) != (k.IntAttribute("rotary_embedding_dim") ?? 0)
            ? "the query and key RotaryEmbedding nodes differ in interleaved or rotary_embedding_dim"
            : null;
    }

    /// <summary>Why the op's rotary embedding cannot reproduce <paramref name="rotary"/>, or null.</summary>
    private static string? Unsupported(NodeProto rotary, GraphTypes types, int numHeads, int? headDim)
    {
        if (rotary.FloatAttribute("scale") is { } scale && scale != 1)
        {
            return $"RotaryEmbedding scale ({scale}) is not 1";
        }
        if (rotary.IntAttribute("is_packed_batching") is { } packedBatching && packedBatching != 0)
        {
            return "RotaryEmbedding uses packed batching";
        }
        var positions = types.Find(rotary.Input[PositionIdsInput]);
        if (positions?.Rank != 2)
        {
            return positions?.Rank is { } rank
                ? $"position_ids has rank {rank} (a start offset); SparseAttention takes [batch, sequence_length] positions"
                : "the rank of position_ids is unknown: give it a [batch, sequence_length] shape";
        }
        if (types.Find(rotary.Input[CosCacheInput])?.Dims is not [_, { } halfRotary])
        {
            return "the shape of cos_cache is unknown: give it a static [max_position, rotary_dim / 2] shape";
        }
        var rotaryDim = rotary.IntAttribute("rotary_embedding_dim") ?? 0;
        if (rotaryDim == 0)
        {
            // RotaryEmbedding then splits the hidden size into heads of 2·cos_cache.shape[1] and rotates them whole.
            return headDim == 2 * halfRotary
                ? null
                : $"RotaryEmbedding rotates heads of {2 * halfRotary} (2·cos_cache dim 1) but the attention's heads have {headDim?.ToString() ?? "an unknown"} size";
        }
        if (rotary.IntAttribute("num_heads") != numHeads)
        {
            return $"RotaryEmbedding num_heads ({rotary.IntAttribute("num_heads")?.ToString() ?? "unset"}) differs from the attention's ({numHeads})";
        }
        return rotaryDim == 2 * halfRotary
            ? null
            : $"rotary_embedding_dim ({rotaryDim}) is not 2·cos_cache dim 1 ({2 * halfRotary}); SparseAttention takes the rotary size from cos_cache";
    }
}
