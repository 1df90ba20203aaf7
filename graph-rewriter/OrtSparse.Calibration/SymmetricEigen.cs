namespace OrtSparse.Calibration;

/// <summary>
/// Eigendecomposition of a real symmetric matrix by the cyclic Jacobi method: plane rotations
/// <c>A ← Jᵀ A J</c> that each zero one off-diagonal pair, swept over all pairs until the
/// off-diagonal part is negligible. Slower than tridiagonal QL but simple, unconditionally
/// convergent and accurate to working precision, which is what calibration (D ≤ 256, once) needs.
/// </summary>
internal static class SymmetricEigen
{
    private const int MaxSweeps = 100;

    // Sweeps stop once the off-diagonal Frobenius norm is this small relative to the whole matrix:
    // rotations themselves leave round-off of about machine epsilon times the norm behind.
    private const double RelativeTolerance = 1e-14;

    /// <summary>
    /// The eigenvalues and eigenvectors of the symmetric D × D matrix <paramref name="matrix"/>
    /// (row-major; destroyed). Eigenvector <c>i</c> is row <c>i</c> of the returned vectors and
    /// belongs to eigenvalue <c>i</c>; the order is unspecified.
    /// </summary>
    public static (double[] Values, double[] Vectors) Decompose(double[] matrix, int dimension)
    {
        var n = dimension;
        var vectors = new double[n * n];
        for (var i = 0; i < n; i++)
        {
            vectors[i * n + i] = 1;
        }

        var total = FrobeniusNorm(matrix);
        for (var sweep = 0; sweep < MaxSweeps && OffDiagonalNorm(matrix, n) > RelativeTolerance * total; sweep++)
        {
            for (var p = 0; p < n - 1; p++)
            {
                for (var q = p + 1; q < n; q++)
                {
                    Rotate(matrix, vectors, n, p, q);
                }
            }
        }
        if (OffDiagonalNorm(matrix, n) > RelativeTolerance * total)
        {
            throw new InvalidOperationException($"the Jacobi eigensolver did not converge in {MaxSweeps} sweeps (D = {n})");
        }

        var values = new double[n];
        for (var i = 0; i < n; i++)
        {
            values[i] = matrix[i * n + i];
        }
        return (values, vectors);
    }

    /// <summary>Zeroes a[p, q] by a rotation in the (p, q) plane and accumulates it into the eigenvectors.</summary>
    private static void Rotate(double[] a, double[] vectors, int n, int p, int q)
    {
        var apq = a[p * n + q];
        if (apq == 0)
        {
            return;
        }
        // t = tan of the rotation angle, the smaller root of t² + 2θt − 1 = 0, for stability.
        var theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        var t = double.IsFinite(theta * theta)
            ? Math.Sign(theta == 0 ? 1 : theta) / (Math.Abs(theta) + Math.Sqrt(theta * theta + 1))
            : 0.5 / theta;
        var c = 1 / Math.Sqrt(t * t + 1);
        var s = t * c;

        for (var r = 0; r < n; r++)
        {
            if (r == p || r == q)
            {
                continue;
            }
            var arp = a[r * n + p];
            var arq = a[r * n + q];
            a[r * n + p] = a[p * n + r] = c * arp - s * arq;
            a[r * n + q] = a[q * n + r] = s * arp + c * arq;
        }
        a[p * n + p] -= t * apq;
        a[q * n + q] += t * apq;
        a[p * n + q] = a[q * n + p] = 0;

        var rowP = vectors.AsSpan(p * n, n);
        var rowQ = vectors.AsSpan(q * n, n);
        for (var k = 0; k < n; k++)
        {
            var vp = rowP[k];
            var vq = rowQ[k];
            rowP[k] = c * vp - s * vq;
            rowQ[k] = s * vp + c * vq;
        }
    }

    private static double FrobeniusNorm(double[] a)
    {
        var sum = 0.0;
        foreach (var x in a)
        {
            sum += x * x;
        }
        return Math.Sqrt(sum);
    }

    private static double OffDiagonalNorm(double[] a, int n)
    {
        var sum = 0.0;
        for (var i = 0; i < n; i++)
        {
            for (var j = i + 1; j < n; j++)
            {
                sum += 2 * a[i * n + j] * a[i * n + j];
            }
        }
        return Math.Sqrt(sum);
    }
}
