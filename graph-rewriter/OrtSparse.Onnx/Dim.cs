namespace OrtSparse.Onnx;

/// <summary>
/// One axis of a declared tensor shape: a fixed size, a named symbol such as "batch", or unknown.
/// Converts implicitly from <see cref="long"/> and <see cref="string"/>, so shapes read as <c>["batch", 32, 128]</c>.
/// </summary>
public readonly record struct Dim
{
    private Dim(long? value, string? symbol)
    {
        Value = value;
        Symbol = symbol;
    }

    /// <summary>The fixed size, if the axis has one.</summary>
    public long? Value { get; }

    /// <summary>The symbol (dim_param), if the axis has one.</summary>
    public string? Symbol { get; }

    /// <summary>An axis about which nothing is known.</summary>
    public static Dim Unknown => default;

    /// <summary>A fixed size.</summary>
    /// <param name="value">The size.</param>
    public static implicit operator Dim(long value) => new(value, null);

    /// <summary>A named symbol; null gives <see cref="Unknown"/>.</summary>
    /// <param name="symbol">The symbol.</param>
    public static implicit operator Dim(string? symbol) => new(null, symbol);
}
