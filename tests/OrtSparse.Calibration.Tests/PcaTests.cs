namespace OrtSparse.Calibration.Tests;

public sealed class PcaTests
{
    /// <summary>Rows k = Σ_i √λ_i z_i q_i with orthonormal q_i and standard normal z_i, so that E[k kᵀ] = Σ λ_i q_i q_iᵀ.</summary>
    private static (float[] Rows, double[][] Axes) Planted(Synthetic synthetic, double[] variances, int count)
    {
        var dimension = variances.Length;
        var axes = synthetic.OrthonormalRows(dimension, dimension);
        var rows = new float[count * dimension];
        for (var n = 0; n < count; n++)
        {
            for (var i = 0; i < dimension; i++)
            {
                var z = Math.Sqrt(variances[i]) * synthetic.Normal();
                for (var d = 0; d < dimension; d++)
                {
                    rows[n * dimension + d] += (float)(z * axes[i][d]);
                }
            }
        }
        return (rows, axes);
    }

    private static ReadOnlySpan<float> Row(PcaResult pca, int i) => pca.Basis.Values.Span.Slice(i * pca.Dimension, pca.Dimension);

    [Fact]
    public void RecoversThePlantedEigenvectorsAndEigenvalues()
    {
        double[] variances = [20, 12, 8, 5, 3, 2, 1.2, 0.8, 0.5, 0.3, 0.2, 0.1];
        var (rows, axes) = Planted(new Synthetic(1), variances, 40_000);

        var pca = Pca.Fit(rows, variances.Length);

        Assert.Equal(40_000, pca.SampleCount);
        Assert.Equal([variances.Length, variances.Length], pca.Basis.Shape);
        for (var i = 0; i < variances.Length; i++)
        {
            var alignment = Math.Abs(Synthetic.Dot(Synthetic.ToDouble(Row(pca, i)), axes[i]));
            Assert.True(alignment > 0.995, $"component {i} has |cos| {alignment:F5} with the planted axis");
            Assert.InRange(pca.Eigenvalues[i] / variances[i], 0.97, 1.03);
        }
    }

    [Fact]
    public void BasisIsOrthonormalSortedSignFixedAndDiagonalisesTheSecondMoment()
    {
        // Full size, D = 256, with a spread of scales so that every eigenvalue is distinct.
        const int dimension = 256, count = 2000;
        var synthetic = new Synthetic(2);
        var rows = new float[count * dimension];
        for (var i = 0; i < rows.Length; i++)
        {
            rows[i] = (float)(synthetic.Normal() * (1 + (i % dimension) / 32.0) + 0.3);
        }

        var pca = Pca.Fit(rows, dimension);

        for (var i = 0; i < dimension; i++)
        {
            var row = Row(pca, i);
            for (var j = i; j < dimension; j++)
            {
                Assert.Equal(i == j ? 1.0 : 0.0, Synthetic.Dot(row, Row(pca, j)), 1e-5);
            }
            var largest = 0;
            for (var d = 1; d < dimension; d++)
            {
                largest = Math.Abs(row[d]) > Math.Abs(row[largest]) ? d : largest;
            }
            Assert.True(row[largest] > 0, $"component {i}: its largest entry ({largest}) is negative");
            if (i > 0)
            {
                Assert.True(pca.Eigenvalues[i] <= pca.Eigenvalues[i - 1], $"eigenvalue {i} exceeds eigenvalue {i - 1}");
            }
        }

        // M v = λ v for the second moment computed here, independently and naively.
        var moment = new double[dimension * dimension];
        for (var n = 0; n < count; n++)
        {
            for (var a = 0; a < dimension; a++)
            {
                var ka = (double)rows[n * dimension + a];
                for (var b = 0; b < dimension; b++)
                {
                    moment[a * dimension + b] += ka * rows[n * dimension + b] / count;
                }
            }
        }
        var largestEigenvalue = pca.Eigenvalues[0];
        foreach (var i in new[] { 0, 1, 50, 128, 255 })
        {
            var v = Synthetic.ToDouble(Row(pca, i));
            for (var a = 0; a < dimension; a++)
            {
                var mv = Synthetic.Dot(moment.AsSpan(a * dimension, dimension), v);
                Assert.True(Math.Abs(mv - pca.Eigenvalues[i] * v[a]) < 1e-5 * largestEigenvalue, $"(M v - λ v)[{a}] of component {i} is {mv - pca.Eigenvalues[i] * v[a]}");
            }
        }
    }

    [Fact]
    public void UsesTheSecondMomentAboutTheOrigin()
    {
        // Keys sharing a large mean: about the origin the mean is the leading direction (centred PCA would discard it).
        const int dimension = 8;
        var synthetic = new Synthetic(3);
        var mean = synthetic.OrthonormalRows(1, dimension)[0];
        var rows = new float[5000 * dimension];
        for (var i = 0; i < rows.Length; i++)
        {
            rows[i] = (float)(3 * mean[i % dimension] + 0.1 * synthetic.Normal());
        }

        var pca = Pca.Fit(rows, dimension);

        Assert.True(Math.Abs(Synthetic.Dot(Synthetic.ToDouble(Row(pca, 0)), mean)) > 0.9999);
        Assert.InRange(pca.Eigenvalues[0], 8.97, 9.05);   // |m|² + σ², give or take the sampled cross term 2 m·noise
        Assert.InRange(pca.Eigenvalues[1], 0.009, 0.011);
    }

    [Fact]
    public void ExactSmallCaseGivesAxesAndRanksForVariance()
    {
        // E[k kᵀ] = diag(1, 0.25, 0.25, 0): eigenvalues 1, 0.25, 0.25, 0 of total 1.5.
        float[] rows =
        [
            0, 0, 0, -2,
            0, 1, 0, 0,
            0, 0, -1, 0,
            0, 0, 0, 0,
        ];

        var pca = Pca.Fit(rows, 4);

        Assert.Equal([1.0, 0.25, 0.25, 0.0], pca.Eigenvalues.Select(v => Math.Round(v, 12)));
        Assert.Equal([0f, 0, 0, 1], Row(pca, 0).ToArray());   // the sign convention flips −e3 to e3
        Assert.Equal(0, pca.VarianceFraction(0));
        Assert.Equal(2.0 / 3, pca.VarianceFraction(1), 12);
        Assert.Equal(1, pca.VarianceFraction(4));
        Assert.Equal(1, pca.RankForVariance(0.5));
        Assert.Equal(1, pca.RankForVariance(2.0 / 3));
        Assert.Equal(2, pca.RankForVariance(0.7));
        Assert.Equal(3, pca.RankForVariance(0.9));
        Assert.Equal(3, pca.RankForVariance(1));
        Assert.Throws<ArgumentOutOfRangeException>(() => pca.RankForVariance(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => pca.RankForVariance(1.5));
        Assert.Throws<ArgumentOutOfRangeException>(() => pca.RankForVariance(double.NaN));
        Assert.Throws<ArgumentOutOfRangeException>(() => pca.VarianceFraction(5));
    }

    [Fact]
    public void StreamedRowsGiveTheSameBasisAsOneBatch()
    {
        double[] variances = [9, 4, 2, 1, 0.5, 0.25];
        var (rows, _) = Planted(new Synthetic(4), variances, 3000);
        var accumulator = new SecondMomentAccumulator(variances.Length);
        accumulator.Add(rows.AsSpan(0, 6));
        accumulator.Add(rows.AsSpan(6, 300 * 6));
        accumulator.Add([]);
        accumulator.Add(rows.AsSpan(301 * 6));

        var streamed = Pca.Fit(accumulator);
        var batch = Pca.Fit(rows, variances.Length);

        Assert.Equal(3000, accumulator.Count);
        for (var i = 0; i < variances.Length; i++)
        {
            Assert.Equal(batch.Eigenvalues[i], streamed.Eigenvalues[i], 1e-9 * batch.Eigenvalues[0]);
        }
        var difference = batch.Basis.Values.Span.ToArray().Zip(streamed.Basis.Values.Span.ToArray(), (a, b) => Math.Abs(a - b)).Max();
        Assert.True(difference < 1e-5, $"bases differ by {difference}");
        Assert.Equal(batch.Basis.Values.ToArray(), Pca.Fit(rows, variances.Length).Basis.Values.ToArray());
    }

    [Fact]
    public void RejectsBadInputNamingTheProblem()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Pca.Fit(new float[4], 0));
        var ragged = Assert.Throws<ArgumentException>(() => Pca.Fit(new float[7], 2));
        Assert.Contains("7 elements", ragged.Message);
        var rows = new float[6];
        rows[5] = float.NaN;
        var nan = Assert.Throws<ArgumentException>(() => Pca.Fit(rows, 3));
        Assert.Contains("rows[1, 2] is NaN", nan.Message);
        var empty = Assert.Throws<InvalidOperationException>(() => Pca.Fit([], 3));
        Assert.Contains("no rows", empty.Message);
    }
}
