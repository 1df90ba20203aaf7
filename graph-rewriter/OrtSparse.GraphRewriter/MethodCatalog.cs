namespace OrtSparse.GraphRewriter;

/// <summary>Whether a method parameter is an integer or a real attribute.</summary>
public enum ParameterKind
{
    /// <summary>An int attribute.</summary>
    Int,

    /// <summary>A float attribute.</summary>
    Float,
}

/// <summary>One attribute a method takes, as <c>ortsparse patch</c> exposes it (<c>--name value</c>).</summary>
/// <param name="Name">The attribute name (docs/ops.md).</param>
/// <param name="Kind">Int or float.</param>
/// <param name="Default">The op's default, for help texts; null when it depends on the model (e.g. D/4).</param>
/// <param name="Help">One line for the help text.</param>
/// <param name="IsAttribute">False for parameters the rewriter itself uses (e.g. to draw hash projections) rather than writing them onto the op.</param>
public sealed record MethodParameter(string Name, ParameterKind Kind, double? Default, string Help, bool IsAttribute = true);

/// <summary>The per-layer state a method keeps beside the KV cache.</summary>
public enum MethodState
{
    /// <summary>No state.</summary>
    None,

    /// <summary><c>past_index</c>/<c>present_index</c>, int32.</summary>
    Index,

    /// <summary><c>past_summary</c>/<c>present_summary</c>, of the attention's element type.</summary>
    Summary,
}

/// <summary>A selection method of com.ortsparse.SparseAttention and what the rewriter must provide for it.</summary>
/// <param name="Name">The <c>method</c> attribute value.</param>
/// <param name="Summary">One line for help texts.</param>
/// <param name="Parameters">The attributes it takes.</param>
/// <param name="State">The state it keeps beside the cache.</param>
/// <param name="NeedsCalibration">True when it reads method_data_* inputs.</param>
public sealed record MethodSpec(string Name, string Summary, IReadOnlyList<MethodParameter> Parameters, MethodState State, bool NeedsCalibration);

/// <summary>Every method the op implements, with its parameters (docs/ops.md, "Methods").</summary>
public static class MethodCatalog
{
    private static readonly MethodParameter Budget = new("budget", ParameterKind.Float, 0.0625, "keys read exactly: a fraction of the cache (≤ 1) or a count");
    private static readonly MethodParameter Sink = new("sink", ParameterKind.Int, 4, "first tokens always read");
    private static readonly MethodParameter Window = new("window", ParameterKind.Int, 64, "most recent tokens always read");
    private static readonly MethodParameter DenseBelow = new("dense_below", ParameterKind.Int, 1024, "caches shorter than this are attended densely");
    private static readonly MethodParameter[] Common = [Budget, Sink, Window, DenseBelow];

    /// <summary>The methods, by name.</summary>
    public static IReadOnlyList<MethodSpec> All { get; } =
    [
        new("dense", "exact attention", [], MethodState.None, false),
        new("topk", "exact scores, top budget keys (quality ceiling)", Common, MethodState.None, false),
        new("streaming", "sink and window only (quality floor)", [Sink, Window, DenseBelow], MethodState.None, false),
        new("loki", "low-rank PCA scores, top budget keys", [.. Common, new("rank", ParameterKind.Int, null, "principal components for approximate scores (default D/4)")], MethodState.Summary, true),
        new("quest", "page min/max bounds, top pages", [.. Common, new("page_size", ParameterKind.Int, 16, "tokens per page")], MethodState.Summary, false),
        new("saap", "learned cluster ranking, keys of the top clusters", Common, MethodState.Index, true),
        new("hash", "keys sharing an LSH bucket; bucketed prefill",
            [.. Common,
             new("buckets", ParameterKind.Int, 16, "LSH buckets per round (projections drawn by patch without --calibration)", IsAttribute: false),
             new("rounds", ParameterKind.Int, 2, "LSH rounds (likewise)", IsAttribute: false),
             new("seed", ParameterKind.Int, 0, "seed of the drawn projections", IsAttribute: false)],
            MethodState.Index, true),
        new("block", "block-sparse prefill keeping mass gamma; dense decode",
            [new("block_size", ParameterKind.Int, 64, "query and key block size"), new("gamma", ParameterKind.Float, 0.95, "cumulative estimated attention mass to keep")],
            MethodState.None, false),
        new("hyper", "HyperAttention prefill: sortLSH neighbours and sampled columns; dense decode",
            [.. Common,
             new("bits", ParameterKind.Int, 12, "LSH hyperplanes per KV head, 1 to 24 (drawn by patch)", IsAttribute: false),
             new("seed", ParameterKind.Int, 0, "seed of the drawn hyperplanes", IsAttribute: false)],
            MethodState.None, true),
    ];

    /// <summary>The method called <paramref name="name"/>, or an <see cref="ArgumentException"/> listing the methods.</summary>
    /// <param name="name">A method name.</param>
    public static MethodSpec Get(string name) =>
        All.FirstOrDefault(m => m.Name == name)
        ?? throw new ArgumentException($"Unknown method '{name}' (available: {string.Join(", ", All.Select(m => m.Name))}).");
}
