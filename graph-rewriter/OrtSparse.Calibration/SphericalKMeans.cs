using System.Numerics.Tensors;

namespace OrtSparse.Calibration;

/// <summary>
/// Spherical k-means for <c>saap</c>: rows are unit-normalised, clusters are compared by cosine
/// similarity and centroids are the normalised sums of their rows. Seeding is k-means++ (with the
/// squared chordal distance <c>2 − 2 cos</c>); an empty cluster is re-seeded from the row farthest
/// from its centroid. Only the assignment step runs in parallel, and every sum is taken in row order,
/// so a seed gives the same result whatever the thread count.
/// </summary>
public static class SphericalKMeans
{
    private const int SeedingChunk = 4096;

    /// <summary>Clusters the rows of a row-major [N, D] matrix.</summary>
    /// <param name="rows">[N, D] finite values, not all zero.</param>
    /// <param name="dimension">D, at least 1.</param>
    /// <param name="options">The cluster count and the other settings.</param>
    /// <param name="cancellationToken">Stops the work between steps.</param>
    public static SphericalKMeansResult Fit(ReadOnlySpan<float> rows, int dimension, SphericalKMeansOptions options,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var rowCount = Check.Rows(rows, dimension, nameof(rows), nameof(dimension));
        options.Validate(rowCount, dimension);
        Check.Finite(rows, dimension, nameof(rows));
        var unit = Normalise(rows, dimension, out var nonZero);
        if (nonZero.Length == 0)
        {
            throw new ArgumentException("every row is zero, so none has a direction to cluster", nameof(rows));
        }
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = options.MaxDegreeOfParallelism, CancellationToken = cancellationToken };

        var centroids = options.InitialCentroids is { } initial
            ? NormaliseCentroids(initial, dimension)
            : SeedKMeansPlusPlus(unit, nonZero, dimension, options.Clusters, new Random(options.Seed), parallel);
        var assignments = new int[rowCount];
        var similarity = new float[rowCount];
        var next = new int[rowCount];
        AssignNearest(unit, centroids, dimension, assignments, similarity, parallel);

        var iterations = 0;
        var converged = false;
        var reseeded = 0;
        while (iterations < options.MaxIterations)
        {
            cancellationToken.ThrowIfCancellationRequested();
            reseeded += UpdateCentroids(unit, nonZero, dimension, assignments, similarity, centroids);
            iterations++;
            AssignNearest(unit, centroids, dimension, next, similarity, parallel);
            var changed = !next.AsSpan().SequenceEqual(assignments);
            (assignments, next) = (next, assignments);
            if (!changed)
            {
                converged = true;
                break;
            }
        }

        var counts = new int[options.Clusters];
        foreach (var cluster in assignments)
        {
            counts[cluster]++;
        }
        var meanCosine = nonZero.Average(i => (double)similarity[i]);
        return new SphericalKMeansResult(new CalibrationTensor(centroids, options.Clusters, dimension), assignments, iterations,
            converged, meanCosine, counts.Count(c => c == 0), reseeded);
    }

    /// <summary>
    /// Each row's centroid of largest dot product, the lower id on ties. For unit-norm centroids this is
    /// the op's rule for a new key: the centroid of largest cosine similarity.
    /// </summary>
    /// <param name="centroids">[C, D] centroids, C ≥ 1.</param>
    /// <param name="rows">[N, D] rows.</param>
    /// <param name="dimension">D, at least 1.</param>
    /// <param name="maxDegreeOfParallelism">Threads to use; -1 for all cores.</param>
    public static int[] Assign(ReadOnlySpan<float> centroids, ReadOnlySpan<float> rows, int dimension, int maxDegreeOfParallelism = -1)
    {
        var clusterCount = Check.Rows(centroids, dimension, nameof(centroids), nameof(dimension));
        if (clusterCount == 0)
        {
            throw new ArgumentException("there must be at least one centroid", nameof(centroids));
        }
        var rowCount = Check.Rows(rows, dimension, nameof(rows), nameof(dimension));
        var nearest = new int[rowCount];
        new NearestCentroids(centroids, dimension).Find(rows.ToArray(), nearest, new float[rowCount],
            new ParallelOptions { MaxDegreeOfParallelism = maxDegreeOfParallelism });
        return nearest;
    }

    /// <summary>Unit-normalised copies of the rows (zero rows stay zero) and the indices of the non-zero ones.</summary>
    private static float[] Normalise(ReadOnlySpan<float> rows, int dimension, out int[] nonZero)
    {
        var unit = rows.ToArray();
        var nonZeroRows = new List<int>();
        for (var i = 0; i < unit.Length / dimension; i++)
        {
            var row = unit.AsSpan(i * dimension, dimension);
            var norm = TensorPrimitives.Norm(row);
            if (norm > 0)
            {
                TensorPrimitives.Divide(row, norm, row);
                nonZeroRows.Add(i);
            }
        }
        nonZero = [.. nonZeroRows];
        return unit;
    }

    private static float[] NormaliseCentroids(CalibrationTensor initial, int dimension)
    {
        var centroids = initial.Values.ToArray();
        for (var c = 0; c < centroids.Length / dimension; c++)
        {
            var centroid = centroids.AsSpan(c * dimension, dimension);
            var norm = TensorPrimitives.Norm(centroid);
            if (!(norm > 0 && float.IsFinite(norm)))
            {
                throw new ArgumentException($"InitialCentroids row {c} has norm {norm}; initial centroids must be finite and non-zero", nameof(initial));
            }
            TensorPrimitives.Divide(centroid, norm, centroid);
        }
        return centroids;
    }

    /// <summary>
    /// k-means++: the first centroid is a uniformly drawn non-zero row, each next one a row drawn with
    /// probability proportional to its squared distance to the nearest centroid so far. When every row
    /// already coincides with a centroid, the draw is uniform again.
    /// </summary>
    private static float[] SeedKMeansPlusPlus(float[] unit, int[] nonZero, int dimension, int clusterCount, Random random, ParallelOptions parallel)
    {
        var centroids = new float[clusterCount * dimension];
        var nearestSimilarity = new float[unit.Length / dimension];
        Array.Fill(nearestSimilarity, float.NegativeInfinity);
        // Weights are summed per fixed chunk of rows, in parallel, and the chunk sums in order: the
        // draw does not depend on the thread count and needs no sequential pass over all rows.
        var chunkCount = (nonZero.Length + SeedingChunk - 1) / SeedingChunk;
        var chunkWeights = new double[chunkCount];
        var chosen = nonZero[random.Next(nonZero.Length)];
        for (var c = 0; c < clusterCount; c++)
        {
            unit.AsSpan(chosen * dimension, dimension).CopyTo(centroids.AsSpan(c * dimension));
            if (c == clusterCount - 1)
            {
                break;
            }
            var centroid = centroids.AsMemory(c * dimension, dimension);
            Parallel.For(0, chunkCount, parallel, chunk =>
            {
                var weight = 0.0;
                foreach (var i in ChunkRows(nonZero, chunk))
                {
                    var similarity = TensorPrimitives.Dot(unit.AsSpan(i * dimension, dimension), centroid.Span);
                    nearestSimilarity[i] = Math.Max(nearestSimilarity[i], similarity);
                    weight += SeedingWeight(nearestSimilarity[i]);
                }
                chunkWeights[chunk] = weight;
            });
            var total = chunkWeights.Sum();
            chosen = total > 0
                ? Draw(nonZero, nearestSimilarity, chunkWeights, random.NextDouble() * total)
                : nonZero[random.Next(nonZero.Length)];
        }
        return centroids;
    }

    /// <summary>‖x − c‖² = 2 − 2 cos for unit vectors, halved (a constant factor does not change the draw).</summary>
    private static double SeedingWeight(float nearestSimilarity) => Math.Max(0, 1 - (double)nearestSimilarity);

    private static ArraySegment<int> ChunkRows(int[] nonZero, int chunk) =>
        new(nonZero, chunk * SeedingChunk, Math.Min(SeedingChunk, nonZero.Length - chunk * SeedingChunk));

    /// <summary>The row where the running sum of weights first exceeds <paramref name="target"/> (in [0, total)).</summary>
    private static int Draw(int[] nonZero, float[] nearestSimilarity, double[] chunkWeights, double target)
    {
        // The chunk whose running sum first exceeds the target; if round-off leaves none, the last with any weight.
        var chunk = Array.FindLastIndex(chunkWeights, w => w > 0);
        for (var k = 0; k < chunk; k++)
        {
            if (target < chunkWeights[k])
            {
                chunk = k;
                break;
            }
            target -= chunkWeights[k];
        }
        var last = -1;
        foreach (var i in ChunkRows(nonZero, chunk))
        {
            var weight = SeedingWeight(nearestSimilarity[i]);
            if (weight > 0)
            {
                last = i;
                target -= weight;
                if (target < 0)
                {
                    return i;
                }
            }
        }
        return last;   // round-off left the target at the chunk's very end
    }

    private static void AssignNearest(float[] unit, float[] centroids, int dimension, int[] nearest, float[] similarity, ParallelOptions parallel) =>
        new NearestCentroids(centroids, dimension).Find(unit, nearest, similarity, parallel);

    /// <summary>
    /// Replaces each centroid by the normalised sum of its rows, after re-seeding every empty cluster
    /// with the farthest row (lowest similarity, then lowest index) of a cluster that can spare one.
    /// A cluster whose sum is zero keeps its centroid. Returns the number of clusters re-seeded.
    /// </summary>
    private static int UpdateCentroids(float[] unit, int[] nonZero, int dimension, int[] assignments, float[] similarity, float[] centroids)
    {
        var clusterCount = centroids.Length / dimension;
        var sums = new double[centroids.Length];
        var counts = new int[clusterCount];
        for (var i = 0; i < assignments.Length; i++)
        {
            var cluster = assignments[i];
            counts[cluster]++;
            AddRow(sums.AsSpan(cluster * dimension, dimension), unit.AsSpan(i * dimension, dimension), 1);
        }

        var reseeded = 0;
        var empty = Enumerable.Range(0, clusterCount).Where(c => counts[c] == 0).ToList();
        if (empty.Count > 0)
        {
            var farthestFirst = (int[])nonZero.Clone();
            Array.Sort(farthestFirst, (x, y) => similarity[x] != similarity[y] ? similarity[x].CompareTo(similarity[y]) : x.CompareTo(y));
            var candidate = 0;
            foreach (var cluster in empty)
            {
                while (candidate < farthestFirst.Length && counts[assignments[farthestFirst[candidate]]] <= 1)
                {
                    candidate++;
                }
                if (candidate == farthestFirst.Length)
                {
                    break;
                }
                var row = farthestFirst[candidate++];
                var previous = assignments[row];
                counts[previous]--;
                AddRow(sums.AsSpan(previous * dimension, dimension), unit.AsSpan(row * dimension, dimension), -1);
                counts[cluster] = 1;
                AddRow(sums.AsSpan(cluster * dimension, dimension), unit.AsSpan(row * dimension, dimension), 1);
                assignments[row] = cluster;
                reseeded++;
            }
        }

        for (var c = 0; c < clusterCount; c++)
        {
            var sum = sums.AsSpan(c * dimension, dimension);
            var norm = Math.Sqrt(TensorPrimitives.Dot<double>(sum, sum));
            if (norm > 0)
            {
                var centroid = centroids.AsSpan(c * dimension, dimension);
                for (var d = 0; d < dimension; d++)
                {
                    centroid[d] = (float)(sum[d] / norm);
                }
            }
        }
        return reseeded;
    }

    private static void AddRow(Span<double> sum, ReadOnlySpan<float> row, int sign)
    {
        for (var d = 0; d < sum.Length; d++)
        {
            sum[d] += sign * row[d];
        }
    }
}
