namespace OrtSparse.Calibration.Tests;

public sealed class SphericalKMeansTests
{
    /// <summary>Rows around planted unit directions, with random norms, and their planted labels.</summary>
    private static (float[] Rows, int[] Labels, double[][] Directions) Planted(Synthetic synthetic, int clusters, int dimension, int count, double noise)
    {
        var directions = synthetic.OrthonormalRows(clusters, dimension);
        var rows = new float[count * dimension];
        var labels = new int[count];
        for (var n = 0; n < count; n++)
        {
            labels[n] = synthetic.Random.Next(clusters);
            var norm = 0.5 + 2.5 * synthetic.Random.NextDouble();
            for (var d = 0; d < dimension; d++)
            {
                rows[n * dimension + d] = (float)(norm * (directions[labels[n]][d] + noise * synthetic.Normal()));
            }
        }
        return (rows, labels, directions);
    }

    /// <summary>The share of rows whose found cluster's majority planted label is their own.</summary>
    private static double Purity(IReadOnlyList<int> found, int[] labels) =>
        found.Zip(labels).GroupBy(p => p.First).Sum(g => g.GroupBy(p => p.Second).Max(l => l.Count())) / (double)labels.Length;

    private static ReadOnlySpan<float> Centroid(SphericalKMeansResult result, int c)
    {
        var dimension = result.Centroids.Shape[1];
        return result.Centroids.Values.Span.Slice(c * dimension, dimension);
    }

    [Fact]
    public void RecoversWellSeparatedPlantedClusters()
    {
        const int clusters = 12, dimension = 32;
        var (rows, labels, directions) = Planted(new Synthetic(10), clusters, dimension, 4000, noise: 0.08);

        var result = SphericalKMeans.Fit(rows, dimension, new SphericalKMeansOptions { Clusters = clusters, Seed = 7 }, TestContext.Current.CancellationToken);

        Assert.True(Purity(result.Assignments, labels) >= 0.99, $"purity {Purity(result.Assignments, labels):F4}");
        Assert.True(result.Converged);
        Assert.Equal(0, result.EmptyClusters);
        Assert.True(result.MeanCosine > 0.9, $"mean cosine {result.MeanCosine}");
        Assert.Equal([clusters, dimension], result.Centroids.Shape);
        for (var c = 0; c < clusters; c++)
        {
            var centroid = Centroid(result, c);
            Assert.Equal(1.0, Synthetic.Dot(centroid, centroid), 1e-5);
            var unit = Synthetic.ToDouble(centroid);
            Assert.True(directions.Max(direction => Synthetic.Dot(unit, direction)) > 0.99,
                $"centroid {c} matches no planted direction");
        }
        // The returned assignments are the op's rule applied to the returned centroids.
        Assert.Equal(result.Assignments, SphericalKMeans.Assign(result.Centroids.Values.Span, rows, dimension));
    }

    [Fact]
    public void ASeedGivesOneResultWhateverTheThreadCount()
    {
        const int dimension = 16;
        var synthetic = new Synthetic(11);
        var rows = Enumerable.Range(0, 5000 * dimension).Select(_ => (float)synthetic.Normal()).ToArray();
        SphericalKMeansResult Run(int seed, int threads) => SphericalKMeans.Fit(rows, dimension,
            new SphericalKMeansOptions { Clusters = 40, Seed = seed, MaxIterations = 8, MaxDegreeOfParallelism = threads }, TestContext.Current.CancellationToken);

        var single = Run(seed: 5, threads: 1);
        var parallel = Run(seed: 5, threads: -1);
        var otherSeed = Run(seed: 6, threads: -1);

        Assert.Equal(single.Centroids.Values.ToArray(), parallel.Centroids.Values.ToArray());
        Assert.Equal(single.Assignments, parallel.Assignments);
        Assert.Equal(single.Iterations, parallel.Iterations);
        Assert.NotEqual(single.Centroids.Values.ToArray(), otherSeed.Centroids.Values.ToArray());
    }

    [Fact]
    public void AnEmptyClusterIsReseededFromTheFarthestRows()
    {
        const int dimension = 8;
        var (rows, labels, directions) = Planted(new Synthetic(12), 3, dimension, 300, noise: 0.02);
        // Two centroids on planted directions and one opposite to all of them, which no row is nearest to.
        var initial = new float[3 * dimension];
        for (var d = 0; d < dimension; d++)
        {
            initial[d] = (float)directions[0][d];
            initial[dimension + d] = (float)directions[1][d];
            initial[2 * dimension + d] = (float)-(directions[0][d] + directions[1][d] + directions[2][d]);
        }

        var result = SphericalKMeans.Fit(rows, dimension,
            new SphericalKMeansOptions { Clusters = 3, InitialCentroids = new CalibrationTensor(initial, 3, dimension) }, TestContext.Current.CancellationToken);

        Assert.True(result.ReseededClusters >= 1);
        Assert.Equal(0, result.EmptyClusters);
        Assert.Equal(1.0, Purity(result.Assignments, labels));
        Assert.True(Synthetic.Dot(Synthetic.ToDouble(Centroid(result, 2)), directions[2]) > 0.99);
    }

    [Fact]
    public void MoreClustersThanDirectionsLeavesEmptyClustersWithoutFailing()
    {
        const int dimension = 4;
        float[] directions = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1];
        var rows = Enumerable.Range(0, 30).SelectMany(i => directions.Skip(i % 3 * dimension).Take(dimension).Select(x => x * (1 + i))).ToList();
        rows.AddRange([0, 0, 0, 0]);   // a zero row has no direction: it joins cluster 0 and moves nothing

        var result = SphericalKMeans.Fit(rows.ToArray(), dimension, new SphericalKMeansOptions { Clusters = 5, Seed = 3, MaxIterations = 5 }, TestContext.Current.CancellationToken);

        Assert.Equal(2, result.EmptyClusters);
        Assert.Equal(0, result.Assignments[^1]);
        for (var c = 0; c < 5; c++)
        {
            var centroid = Centroid(result, c);
            Assert.Equal(1.0, Synthetic.Dot(centroid, centroid), 1e-5);
        }
        for (var i = 0; i < 30; i++)
        {
            var row = rows.Skip(i * dimension).Take(dimension).ToArray();
            var cosine = Synthetic.Dot(row, Centroid(result, result.Assignments[i])) / Math.Sqrt(Synthetic.Dot(row, row));
            Assert.Equal(1.0, cosine, 1e-5);
        }
        Assert.Equal(1.0, result.MeanCosine, 1e-5);
    }

    [Fact]
    public void AssignMatchesBruteForceAtAwkwardSizes()
    {
        // Sizes that are not multiples of the vector width, the kernel's 4 rows or its 64-row tiles.
        const int dimension = 13, clusters = 37, count = 203;
        var synthetic = new Synthetic(13);
        var centroids = Enumerable.Range(0, clusters * dimension).Select(_ => (float)synthetic.Normal()).ToArray();
        var rows = Enumerable.Range(0, count * dimension).Select(_ => (float)synthetic.Normal()).ToArray();

        var nearest = SphericalKMeans.Assign(centroids, rows, dimension);

        for (var n = 0; n < count; n++)
        {
            var row = rows[(n * dimension)..((n + 1) * dimension)];
            var scores = Enumerable.Range(0, clusters).Select(c => Synthetic.Dot(row, centroids.AsSpan(c * dimension, dimension))).ToArray();
            Assert.True(scores[nearest[n]] >= scores.Max() - 1e-5, $"row {n}: picked {nearest[n]} ({scores[nearest[n]]}), best is {scores.Max()}");
        }
        Assert.Equal([0, 0], SphericalKMeans.Assign([1, 0, 1, 0], [2, 0, 3, 0], 2));   // ties go to the lower id
    }

    [Fact]
    public void RejectsBadInputNamingTheProblem()
    {
        var rows = new float[] { 1, 0, 0, 1, 1, 1 };
        var tooMany = Assert.Throws<ArgumentOutOfRangeException>(() => SphericalKMeans.Fit(rows, 2, new SphericalKMeansOptions { Clusters = 4 }, TestContext.Current.CancellationToken));
        Assert.Contains("number of rows (3)", tooMany.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => SphericalKMeans.Fit(rows, 2, new SphericalKMeansOptions { Clusters = 0 }, TestContext.Current.CancellationToken));
        Assert.Throws<ArgumentOutOfRangeException>(() => SphericalKMeans.Fit(rows, 2, new SphericalKMeansOptions { Clusters = 2, MaxDegreeOfParallelism = 0 }, TestContext.Current.CancellationToken));
        var zero = Assert.Throws<ArgumentException>(() => SphericalKMeans.Fit(new float[6], 2, new SphericalKMeansOptions { Clusters = 2 }, TestContext.Current.CancellationToken));
        Assert.Contains("every row is zero", zero.Message);
        var infinite = Assert.Throws<ArgumentException>(() => SphericalKMeans.Fit([1, 0, float.PositiveInfinity, 1], 2, new SphericalKMeansOptions { Clusters = 1 }, TestContext.Current.CancellationToken));
        Assert.Contains("rows[1, 0] is " + float.PositiveInfinity, infinite.Message);
        var shape = Assert.Throws<ArgumentException>(() => SphericalKMeans.Fit(rows, 2,
            new SphericalKMeansOptions { Clusters = 2, InitialCentroids = new CalibrationTensor(new float[6], 3, 2) }, TestContext.Current.CancellationToken));
        Assert.Contains("expected [2,2]", shape.Message);
        var zeroCentroid = Assert.Throws<ArgumentException>(() => SphericalKMeans.Fit(rows, 2,
            new SphericalKMeansOptions { Clusters = 2, InitialCentroids = new CalibrationTensor([1, 0, 0, 0], 2, 2) }, TestContext.Current.CancellationToken));
        Assert.Contains("row 1 has norm 0", zeroCentroid.Message);
        Assert.Throws<ArgumentException>(() => SphericalKMeans.Assign([], rows, 2));
    }
}
