namespace OrtSparse.Runtime.Generation;

/// <summary>
/// The share of a layer's KV cache bytes that one decode step reads, from the op's selection rule
/// (docs/ops.md, "Selection rules"): sink, window and the budget's keys, plus what the method reads to
/// choose them (topk every key; loki its rank-r summaries; quest a min/max summary per page).
/// </summary>
public static class CacheReadEstimate
{
    /// <summary>The fraction of <paramref name="layer"/>'s cache read by a step whose query sees <paramref name="visibleKeys"/> keys (1 for dense).</summary>
    public static double Fraction(LayerConfig layer, long visibleKeys)
    {
        ArgumentNullException.ThrowIfNull(layer);
        if (visibleKeys <= 0 || layer.Method is "dense" or "block" or "hyper")
        {
            return 1;
        }
        double Parameter(string name, double fallback) => layer.Parameters.GetValueOrDefault(name, fallback);
        double n = visibleKeys;
        if (n < Parameter("dense_below", 1024))
        {
            return 1;
        }
        var (sink, window, budget) = (Parameter("sink", 4), Parameter("window", 64), Parameter("budget", 0.0625));
        var middle = Math.Max(0, n - sink - window);
        var picked = layer.Method == "streaming" ? 0 : Math.Min(middle, budget <= 1 ? Math.Ceiling(budget * n) : Math.Floor(budget));
        var attended = Math.Min(n, sink + window) + picked;
        if (attended >= n)
        {
            return 1; // nothing left to select from: the row is attended densely
        }
        var headSize = layer.HeadSize ?? 128;
        return layer.Method switch
        {
            "topk" => (n + attended) / (2 * n),
            "loki" => attended / n + Parameter("rank", headSize / 4.0) / (2 * headSize),
            "quest" => attended / n + 1 / Parameter("page_size", 16),
            _ => attended / n,
        };
    }

    /// <summary>The mean of <see cref="Fraction(LayerConfig, long)"/> over the layers of <paramref name="config"/>.</summary>
    public static double Fraction(ModelConfig config, long visibleKeys)
    {
        ArgumentNullException.ThrowIfNull(config);
        return config.Layers.Count == 0 ? 1 : config.Layers.Average(l => Fraction(l, visibleKeys));
    }
}
