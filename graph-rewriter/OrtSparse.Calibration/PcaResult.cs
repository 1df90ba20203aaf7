namespace OrtSparse.Calibration;

/// <summary>A PCA basis and the energy along each of its components (see <see cref="Pca"/>).</summary>
public sealed class PcaResult
{
    private readonly double[] _eigenvalues;
    private readonly double[] _cumulative;

    internal PcaResult(CalibrationTensor basis, double[] eigenvalues, long sampleCount)
    {
        Basis = basis;
        _eigenvalues = eigenvalues;
        SampleCount = sampleCount;
        _cumulative = new double[eigenvalues.Length + 1];
        for (var i = 0; i < eigenvalues.Length; i++)
        {
            _cumulative[i + 1] = _cumulative[i] + eigenvalues[i];
        }
    }

    /// <summary>
    /// [D, D]: row <c>i</c> is the <c>i</c>-th principal component, by decreasing eigenvalue. Rows are
    /// orthonormal, and each row's component largest in magnitude is positive.
    /// </summary>
    public CalibrationTensor Basis { get; }

    /// <summary>The row length D.</summary>
    public int Dimension => _eigenvalues.Length;

    /// <summary>The number of rows the basis was computed from.</summary>
    public long SampleCount { get; }

    /// <summary>
    /// The eigenvalues of <c>E[k kᵀ]</c>, decreasing: eigenvalue <c>i</c> is the mean of
    /// <c>(basis_i · k)²</c>. Their sum is the mean of <c>|k|²</c>, the "variance about the origin".
    /// </summary>
    public IReadOnlyList<double> Eigenvalues => _eigenvalues;

    /// <summary>The fraction of the variance about the origin that the first <paramref name="rank"/> components hold (1 when the keys are all zero).</summary>
    /// <param name="rank">0 to D.</param>
    public double VarianceFraction(int rank)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(rank, Dimension);
        var total = _cumulative[^1];
        return total > 0 ? Math.Min(1, _cumulative[rank] / total) : 1;
    }

    /// <summary>
    /// The smallest rank, at least 1, whose components hold at least <paramref name="fraction"/> of the
    /// variance about the origin: a natural <c>rank</c> attribute for <c>loki</c>.
    /// </summary>
    /// <param name="fraction">In (0, 1], e.g. 0.9.</param>
    public int RankForVariance(double fraction)
    {
        if (!(fraction > 0 && fraction <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(fraction), fraction, "the variance fraction must be in (0, 1]");
        }
        for (var rank = 1; rank < Dimension; rank++)
        {
            if (VarianceFraction(rank) >= fraction)
            {
                return rank;
            }
        }
        return Dimension;
    }
}
