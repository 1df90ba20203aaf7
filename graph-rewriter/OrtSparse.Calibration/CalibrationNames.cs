namespace OrtSparse.Calibration;

/// <summary>
/// The tensor names of a calibration file, one set per decoder layer. Each tensor is stacked over heads
/// and shaped as the op's <c>method_data_*</c> input it feeds (see docs/ops.md, "Methods").
/// </summary>
public static class CalibrationNames
{
    /// <summary><c>layers.{layer}.loki.basis</c>: [Hkv, D, D] PCA bases (loki <c>method_data_0</c>).</summary>
    /// <param name="layer">The decoder layer, from 0.</param>
    public static string LokiBasis(int layer) => Name(layer, "loki.basis");

    /// <summary><c>layers.{layer}.saap.centroids</c>: [Hkv, C, D] unit centroids (saap <c>method_data_0</c>).</summary>
    /// <inheritdoc cref="LokiBasis"/>
    public static string SaapCentroids(int layer) => Name(layer, "saap.centroids");

    /// <summary><c>layers.{layer}.saap.w1</c>: [Hq, D, M] classifier first layer (saap <c>method_data_1</c>).</summary>
    /// <inheritdoc cref="LokiBasis"/>
    public static string SaapW1(int layer) => Name(layer, "saap.w1");

    /// <summary><c>layers.{layer}.saap.b1</c>: [Hq, M] classifier first-layer bias (saap <c>method_data_2</c>).</summary>
    /// <inheritdoc cref="LokiBasis"/>
    public static string SaapB1(int layer) => Name(layer, "saap.b1");

    /// <summary><c>layers.{layer}.saap.w2</c>: [Hq, M + 1, C] classifier second layer, bias last (saap <c>method_data_3</c>).</summary>
    /// <inheritdoc cref="LokiBasis"/>
    public static string SaapW2(int layer) => Name(layer, "saap.w2");

    /// <summary><c>layers.{layer}.hash.projections</c>: [Hkv, R, D, NB/2] LSH projections (hash <c>method_data_0</c>).</summary>
    /// <inheritdoc cref="LokiBasis"/>
    public static string HashProjections(int layer) => Name(layer, "hash.projections");

    /// <summary><c>layers.{layer}.capture.query</c>: [Hq, T, D] the queries of a captured sequence (<c>ortsparse capture</c>).</summary>
    /// <inheritdoc cref="LokiBasis"/>
    public static string CapturedQueries(int layer) => Name(layer, "capture.query");

    /// <summary><c>layers.{layer}.capture.key</c>: [Hkv, T, D] the keys of a captured sequence, as the attention reads them.</summary>
    /// <inheritdoc cref="LokiBasis"/>
    public static string CapturedKeys(int layer) => Name(layer, "capture.key");

    /// <summary><c>layers.{layer}.capture.value</c>: [Hkv, T, Dv] the values of a captured sequence.</summary>
    /// <inheritdoc cref="LokiBasis"/>
    public static string CapturedValues(int layer) => Name(layer, "capture.value");

    private static string Name(int layer, string tensor)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(layer);
        return $"layers.{layer}.{tensor}";
    }
}
