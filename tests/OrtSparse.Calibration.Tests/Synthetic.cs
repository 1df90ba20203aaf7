namespace OrtSparse.Calibration.Tests;

/// <summary>Random test data from a seeded generator, written independently of the library's own sampler.</summary>
public sealed class Synthetic(int seed)
{
    private readonly Random _random = new(seed);

    public Random Random => _random;

    public double Normal()
    {
        // Marsaglia's polar method: a different route to normals than the library's Box–Muller.
        while (true)
        {
            var u = 2 * _random.NextDouble() - 1;
            var v = 2 * _random.NextDouble() - 1;
            var s = u * u + v * v;
            if (s > 0 && s < 1)
            {
                return u * Math.Sqrt(-2 * Math.Log(s) / s);
            }
        }
    }

    /// <summary>n orthonormal rows of length dimension (Gram–Schmidt on Gaussian rows), n ≤ dimension.</summary>
    public double[][] OrthonormalRows(int n, int dimension)
    {
        var rows = new double[n][];
        for (var i = 0; i < n; i++)
        {
            var row = Enumerable.Range(0, dimension).Select(_ => Normal()).ToArray();
            for (var pass = 0; pass < 2; pass++)
            {
                for (var j = 0; j < i; j++)
                {
                    var projection = Dot(row, rows[j]);
                    for (var d = 0; d < dimension; d++)
                    {
                        row[d] -= projection * rows[j][d];
                    }
                }
            }
            var norm = Math.Sqrt(Dot(row, row));
            rows[i] = row.Select(x => x / norm).ToArray();
        }
        return rows;
    }

    public static double Dot(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        var sum = 0.0;
        for (var i = 0; i < a.Length; i++)
        {
            sum += a[i] * b[i];
        }
        return sum;
    }

    public static double Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        var sum = 0.0;
        for (var i = 0; i < a.Length; i++)
        {
            sum += (double)a[i] * b[i];
        }
        return sum;
    }

    public static double[] ToDouble(ReadOnlySpan<float> values)
    {
        var result = new double[values.Length];
        for (var i = 0; i < values.Length; i++)
        {
            result[i] = values[i];
        }
        return result;
    }
}
