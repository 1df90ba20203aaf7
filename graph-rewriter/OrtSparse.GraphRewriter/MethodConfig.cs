namespace OrtSparse.GraphRewriter;

/// <summary>The selection method written onto every replaced attention site, with its parameters.</summary>
public sealed record MethodConfig
{
    /// <summary>The method name (the op's <c>method</c> attribute). Default: dense.</summary>
    public string Method { get; init; } = "dense";

    /// <summary>Numeric method parameters, written as float attributes under their own names (budget, …).</summary>
    public IReadOnlyDictionary<string, float> FloatParameters { get; init; } = new Dictionary<string, float>();

    /// <summary>Integer method parameters, written as int attributes under their own names (sink, window, …).</summary>
    public IReadOnlyDictionary<string, long> IntParameters { get; init; } = new Dictionary<string, long>();

    /// <summary>Throws an <see cref="ArgumentException"/> naming the problem when the method is unknown.</summary>
    public void Validate()
    {
        if (!SparseAttentionOp.Methods.Contains(Method))
        {
            throw new ArgumentException($"Unknown method '{Method}' (available: {string.Join(", ", SparseAttentionOp.Methods)}).");
        }
    }
}
