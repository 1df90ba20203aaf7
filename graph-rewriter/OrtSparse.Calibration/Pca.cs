namespace OrtSparse.Calibration;

/// <summary>
/// Principal components of keys for <c>loki</c>. The op scores keys by <c>q·k</c>, so what a low-rank
/// score must keep is the keys' energy about the origin, not about their mean: the basis
/// diagonalises the uncentered second moment <c>E[k kᵀ]</c>, and a shared mean direction (which every
/// score depends on) becomes a leading component instead of being discarded.
/// </summary>
public static class Pca
{
    /// <summary>The principal components of the rows of a row-major [N, D] matrix.</summary>
    /// <param name="rows">[N, D] finite values, N ≥ 1.</param>
    /// <param name="dimension">D, at least 1.</param>
    public static PcaResult Fit(ReadOnlySpan<float> rows, int dimension)
    {
        var accumulator = new SecondMomentAccumulator(dimension);
        accumulator.Add(rows);
        return Fit(accumulator);
    }

    /// <summary>The principal components of every row added to <paramref name="accumulator"/>.</summary>
    /// <param name="accumulator">An accumulator holding at least one row.</param>
    public static PcaResult Fit(SecondMomentAccumulator accumulator)
    {
        ArgumentNullException.ThrowIfNull(accumulator);
        var n = accumulator.Dimension;
        var (values, vectors) = SymmetricEigen.Decompose(accumulator.Mean(), n);

        // Decreasing eigenvalue; equal ones keep the solver's order, so the result is reproducible.
        var order = Enumerable.Range(0, n).OrderByDescending(i => values[i]).ThenBy(i => i).ToArray();
        var sortedVectors = new double[n * n];
        var eigenvalues = new double[n];
        for (var rank = 0; rank < n; rank++)
        {
            vectors.AsSpan(order[rank] * n, n).CopyTo(sortedVectors.AsSpan(rank * n, n));
            // The matrix is positive semi-definite; a negative eigenvalue is round-off.
            eigenvalues[rank] = Math.Max(0, values[order[rank]]);
        }
        Orthonormalise(sortedVectors, n);
        var basis = new float[n * n];
        for (var rank = 0; rank < n; rank++)
        {
            var row = sortedVectors.AsSpan(rank * n, n);
            MakeLargestComponentPositive(row);
            for (var d = 0; d < n; d++)
            {
                basis[rank * n + d] = (float)row[d];
            }
        }
        return new PcaResult(new CalibrationTensor(basis, n, n), eigenvalues, accumulator.Count);
    }

    /// <summary>Modified Gram–Schmidt over the rows, in order: removes the solver's round-off drift.</summary>
    private static void Orthonormalise(double[] rows, int n)
    {
        for (var i = 0; i < n; i++)
        {
            var row = rows.AsSpan(i * n, n);
            for (var j = 0; j < i; j++)
            {
                var previous = rows.AsSpan(j * n, n);
                var projection = System.Numerics.Tensors.TensorPrimitives.Dot<double>(row, previous);
                for (var d = 0; d < n; d++)
                {
                    row[d] -= projection * previous[d];
                }
            }
            var norm = Math.Sqrt(System.Numerics.Tensors.TensorPrimitives.Dot<double>(row, row));
            for (var d = 0; d < n; d++)
            {
                row[d] /= norm;
            }
        }
    }

    /// <summary>Eigenvectors are defined up to sign; fix it so that the component largest in magnitude (the first of equals) is positive.</summary>
    private static void MakeLargestComponentPositive(Span<double> row)
    {
        var largest = 0;
        for (var d = 1; d < row.Length; d++)
        {
            if (Math.Abs(row[d]) > Math.Abs(row[largest]))
            {
                largest = d;
            }
        }
        if (row[largest] < 0)
        {
            foreach (ref var x in row)
            {
                x = -x;
            }
        }
    }
}
