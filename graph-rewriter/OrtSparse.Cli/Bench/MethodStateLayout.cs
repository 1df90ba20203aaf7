namespace OrtSparse.Cli.Bench;

/// <summary>
/// The shape [B, Hkv, rows, width] of a method's state for a shared-buffer cache of T positions
/// (docs/ops.md, "Methods"): what a step binds as past_index/past_summary and present_*.
/// </summary>
internal static class MethodStateLayout
{
    /// <summary>Axis 2: a row per page for quest, a row per cached key otherwise.</summary>
    /// <param name="method">The method.</param>
    /// <param name="context">T, the cache capacity.</param>
    /// <param name="pageSize">quest's page_size.</param>
    public static long Rows(string method, long context, long pageSize) => method == "quest" ? (context + pageSize - 1) / pageSize : context;

    /// <summary>Axis 3: quest's min and max (2·D), loki's rank, saap's cluster id, hash's rounds; 0 for stateless methods.</summary>
    /// <param name="method">The method.</param>
    /// <param name="headDim">D.</param>
    /// <param name="lokiRank">loki's rank.</param>
    /// <param name="hashRounds">hash's rounds (axis 1 of its projections).</param>
    public static long Width(string method, int headDim, long lokiRank, long hashRounds) => method switch
    {
        "quest" => 2L * headDim,
        "loki" => lokiRank,
        "saap" => 1,
        "hash" => hashRounds,
        _ => 0,
    };
}
