using System.Globalization;
using OrtSparse.Calibration;

namespace OrtSparse.GraphRewriter;

/// <summary>What <see cref="ModelPatcher.Patch"/> should do.</summary>
public sealed record PatchOptions
{
    /// <summary>The default of <see cref="MaxLength"/>.</summary>
    public const int DefaultMaxLength = 4096;

    /// <summary>The method of every layer that no entry of <see cref="LayerMethods"/> names. Default: dense.</summary>
    public MethodConfig Method { get; init; } = new();

    /// <summary>
    /// Methods for particular layers, each replacing <see cref="Method"/> on the layers of its range.
    /// Ranges must not overlap, and must name layers the model has. Layer L is the L-th replaceable
    /// attention site in graph order (what <c>ortsparse inspect</c> numbers).
    /// </summary>
    public IReadOnlyList<LayerMethod> LayerMethods { get; init; } = [];

    /// <summary>Leave sites that cannot be replaced as they are instead of failing.</summary>
    public bool LeaveUnsupported { get; init; }

    /// <summary>
    /// Give a model exported without a KV cache one (GenAI's <c>past_key_values.N.key/value</c> inputs and
    /// <c>present.N.key/value</c> outputs, positions after the cached prefix); every site must be replaced,
    /// causal and without a cache. See docs/rewriter.md.
    /// </summary>
    public bool AddCache { get; init; }

    /// <summary>
    /// The longest sequence the patched model serves where the rewriter derives a rotary embedding's cos/sin tables
    /// from the graph (rows of the tables the op takes over). Default 4096.
    /// </summary>
    public long MaxLength { get; init; } = PatchOptions.DefaultMaxLength;

    /// <summary>Calibration data (from <c>ortsparse calibrate</c>) for methods that need it; layer L is the L-th replaced site in graph order.</summary>
    public CalibrationData? Calibration { get; init; }

    /// <summary>The method of layer <paramref name="layer"/>.</summary>
    /// <param name="layer">A layer number, from 0.</param>
    public MethodConfig MethodFor(int layer) => LayerMethods.FirstOrDefault(l => l.Layers.Contains(layer))?.Method ?? Method;

    /// <summary>
    /// Throws an <see cref="ArgumentException"/> naming the problem: an invalid method or parameter
    /// (<see cref="MethodConfig.Validate"/>), or two layer ranges that overlap.
    /// </summary>
    public void Validate()
    {
        if (MaxLength is < 1 or > int.MaxValue)
        {
            throw new ArgumentException($"MaxLength ({MaxLength}) must be in [1, {int.MaxValue}]");
        }
        Method.Validate();
        for (var i = 0; i < LayerMethods.Count; i++)
        {
            var entry = LayerMethods[i];
            try
            {
                entry.Method.Validate();
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"Layers {entry.Layers}: {e.Message}", e);
            }
            foreach (var earlier in LayerMethods.Take(i).Where(e => e.Layers.Overlaps(entry.Layers)))
            {
                throw new ArgumentException(
                    $"Layers {earlier.Layers} ({earlier.Method.Method}) and {entry.Layers} ({entry.Method.Method}) overlap; give each layer one method.");
            }
        }
    }
}

/// <summary>The method of the layers in a range.</summary>
/// <param name="Layers">The layers.</param>
/// <param name="Method">Their method and its parameters.</param>
public sealed record LayerMethod(LayerRange Layers, MethodConfig Method);

/// <summary>
/// Consecutive attention layers: <see cref="First"/> to <see cref="Last"/> inclusive, or every layer
/// from <see cref="First"/> on when <see cref="Last"/> is null. Written <c>3</c>, <c>0-1</c> or <c>2-</c>.
/// </summary>
public readonly record struct LayerRange
{
    /// <summary>Layers <paramref name="first"/> to <paramref name="last"/>, or from <paramref name="first"/> on when <paramref name="last"/> is null.</summary>
    /// <param name="first">The first layer, from 0.</param>
    /// <param name="last">The last layer (at least <paramref name="first"/>), or null for no end.</param>
    public LayerRange(int first, int? last)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(first);
        if (last < first)
        {
            throw new ArgumentOutOfRangeException(nameof(last), last, $"the layer range ends ({last}) before it starts ({first})");
        }
        (First, Last) = (first, last);
    }

    /// <summary>The first layer.</summary>
    public int First { get; }

    /// <summary>The last layer, or null when the range runs to the last layer of the model.</summary>
    public int? Last { get; }

    /// <summary>True when the range holds <paramref name="layer"/>.</summary>
    /// <param name="layer">A layer number.</param>
    public bool Contains(int layer) => layer >= First && (Last is null || layer <= Last);

    /// <summary>True when some layer is in both ranges.</summary>
    /// <param name="other">Another range.</param>
    public bool Overlaps(LayerRange other) => (Last is null || other.First <= Last) && (other.Last is null || First <= other.Last);

    /// <summary><c>3</c>, <c>0-1</c> or <c>2-</c>.</summary>
    public override string ToString() => Last == First ? $"{First}" : Last is null ? $"{First}-" : $"{First}-{Last}";

    /// <summary>Reads <c>N</c>, <c>N-M</c> or <c>N-</c> (layers count from 0).</summary>
    /// <param name="text">The range.</param>
    /// <exception cref="FormatException">The text is not a range; the message quotes it.</exception>
    public static LayerRange Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var dash = text.IndexOf('-');
        var firstText = dash < 0 ? text : text[..dash];
        var lastText = dash < 0 ? firstText : text[(dash + 1)..];
        var parsedLast = 0;
        if (!TryParseLayer(firstText, out var first) || (lastText.Length > 0 && !TryParseLayer(lastText, out parsedLast)))
        {
            throw new FormatException($"'{text}' is not a layer range: write N, N-M or N- with layer numbers from 0");
        }
        int? last = lastText.Length == 0 ? null : parsedLast;
        return last < first
            ? throw new FormatException($"the layer range '{text}' ends before it starts")
            : new LayerRange(first, last);
    }

    private static bool TryParseLayer(string text, out int layer) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out layer);
}
