namespace OrtSparse.Calibration;

/// <summary>
/// One query head's <c>saap</c> cluster classifier in the op's layout:
/// <c>z = W2[0..M)ᵀ·relu(W1ᵀ·q + b1) + W2[M]</c>, applied to the raw (pre-rotary) query.
/// </summary>
public sealed class ClusterClassifierModel
{
    /// <summary>Wraps trained or loaded weights, checking that their shapes fit together.</summary>
    /// <param name="w1">[D, M] first-layer weights.</param>
    /// <param name="b1">[M] first-layer bias.</param>
    /// <param name="w2">[M + 1, C] second-layer weights with the bias as the last row.</param>
    public ClusterClassifierModel(CalibrationTensor w1, CalibrationTensor b1, CalibrationTensor w2)
    {
        ArgumentNullException.ThrowIfNull(w1);
        ArgumentNullException.ThrowIfNull(b1);
        ArgumentNullException.ThrowIfNull(w2);
        if (w1.Shape.Count != 2 || b1.Shape.Count != 1 || w2.Shape.Count != 2
            || b1.Shape[0] != w1.Shape[1] || w2.Shape[0] != w1.Shape[1] + 1 || w1.Shape[0] == 0 || w1.Shape[1] == 0 || w2.Shape[1] == 0)
        {
            throw new ArgumentException($"classifier shapes W1 {w1}, b1 {b1}, W2 {w2} do not fit [D, M], [M], [M + 1, C] with D, M, C ≥ 1");
        }
        W1 = w1;
        B1 = b1;
        W2 = w2;
    }

    /// <summary>[D, M]: the <c>saap</c> <c>method_data_1</c> of this query head.</summary>
    public CalibrationTensor W1 { get; }

    /// <summary>[M]: the <c>saap</c> <c>method_data_2</c> of this query head.</summary>
    public CalibrationTensor B1 { get; }

    /// <summary>[M + 1, C], bias last: the <c>saap</c> <c>method_data_3</c> of this query head.</summary>
    public CalibrationTensor W2 { get; }

    /// <summary>The query length D.</summary>
    public int Dimension => W1.Shape[0];

    /// <summary>The hidden width M.</summary>
    public int HiddenUnits => W1.Shape[1];

    /// <summary>The number of clusters C.</summary>
    public int ClusterCount => W2.Shape[1];

    /// <summary>The cluster logits of one query; the op ranks clusters by their softmax.</summary>
    /// <param name="query">[D] the raw query.</param>
    public float[] Logits(ReadOnlySpan<float> query)
    {
        if (query.Length != Dimension)
        {
            throw new ArgumentException($"the query has {query.Length} elements, the classifier takes D = {Dimension}", nameof(query));
        }
        var logits = new float[ClusterCount];
        Logits(query.ToArray(), 1, logits, new ParallelOptions { MaxDegreeOfParallelism = 1 });
        return logits;
    }

    /// <summary>[rows, C] logits of [rows, D] queries.</summary>
    internal void Logits(ReadOnlyMemory<float> queries, int rows, Memory<float> logits, ParallelOptions parallel)
    {
        var hidden = new float[rows * HiddenUnits];
        DenseMath.Affine(queries, rows, W1.Values, B1.Values, hidden, parallel);
        System.Numerics.Tensors.TensorPrimitives.Max(hidden, 0f, hidden);
        var weights = W2.Values[..(HiddenUnits * ClusterCount)];
        var bias = W2.Values[(HiddenUnits * ClusterCount)..];
        DenseMath.Affine(hidden, rows, weights, bias, logits, parallel);
    }
}
