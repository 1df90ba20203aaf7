namespace OrtSparse.GraphRewriter;

/// <summary>The selection method written onto every replaced attention site, with its parameters.</summary>
public sealed record MethodConfig
{
    /// <summary>The method name (the op's <c>method</c> attribute). Default: dense.</summary>
    public string Method { get; init; } = "dense";

    /// <summary>Method parameters by name (<see cref="MethodSpec.Parameters"/>); the op's defaults apply to those not given.</summary>
    public IReadOnlyDictionary<string, double> Parameters { get; init; } = new Dictionary<string, double>();

    /// <summary>The method's description.</summary>
    public MethodSpec Spec => MethodCatalog.Get(Method);

    /// <summary>A parameter's value: the given one, else the catalog default, else <paramref name="fallback"/>.</summary>
    public double Parameter(string name, double fallback) =>
        Parameters.TryGetValue(name, out var value) ? value : Spec.Parameters.FirstOrDefault(p => p.Name == name)?.Default ?? fallback;

    /// <summary>Throws an <see cref="ArgumentException"/> naming the problem: an unknown method, or a parameter the method does not take or of the wrong kind.</summary>
    public void Validate()
    {
        var spec = Spec;
        foreach (var (name, value) in Parameters)
        {
            var parameter = spec.Parameters.FirstOrDefault(p => p.Name == name)
                ?? throw new ArgumentException(spec.Parameters.Count == 0
                    ? $"Method '{Method}' takes no parameters, got '{name}'."
                    : $"Method '{Method}' has no parameter '{name}' (it takes: {string.Join(", ", spec.Parameters.Select(p => p.Name))}).");
            if (!double.IsFinite(value) || (parameter.Kind == ParameterKind.Int && (value != Math.Floor(value) || Math.Abs(value) > int.MaxValue)))
            {
                throw new ArgumentException($"Parameter '{name}' of method '{Method}' must be {(parameter.Kind == ParameterKind.Int ? "an integer" : "a finite number")}, got {value}.");
            }
        }
    }
}
