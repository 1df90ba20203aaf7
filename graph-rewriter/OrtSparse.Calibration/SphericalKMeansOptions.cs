namespace OrtSparse.Calibration;

/// <summary>Settings of <see cref="SphericalKMeans.Fit"/>.</summary>
public sealed record SphericalKMeansOptions
{
    /// <summary>The number of clusters C, at least 1 and at most the number of rows.</summary>
    public required int Clusters { get; init; }

    /// <summary>The most Lloyd iterations (centroid updates); fewer run when assignments stop changing. Default 20.</summary>
    public int MaxIterations { get; init; } = 20;

    /// <summary>Seeds the k-means++ initialisation; the result depends only on it and the data. Default 0.</summary>
    public int Seed { get; init; }

    /// <summary>Threads to use; -1 (the default) for all cores. The result does not depend on it.</summary>
    public int MaxDegreeOfParallelism { get; init; } = -1;

    /// <summary>
    /// [C, D] starting centroids instead of k-means++ seeding, e.g. those of an earlier calibration;
    /// each row is normalised and must not be zero. Null (the default) seeds with k-means++.
    /// </summary>
    public CalibrationTensor? InitialCentroids { get; init; }

    internal void Validate(int rowCount, int dimension)
    {
        if (Clusters < 1 || Clusters > rowCount)
        {
            throw new ArgumentOutOfRangeException(nameof(Clusters), Clusters, $"the cluster count must be between 1 and the number of rows ({rowCount})");
        }
        ArgumentOutOfRangeException.ThrowIfNegative(MaxIterations);
        if (MaxDegreeOfParallelism is 0 or < -1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxDegreeOfParallelism), MaxDegreeOfParallelism, "must be -1 (all cores) or positive");
        }
        if (InitialCentroids is { } initial && !initial.Shape.SequenceEqual([Clusters, dimension]))
        {
            throw new ArgumentException($"InitialCentroids has shape {initial}, expected [{Clusters},{dimension}] (Clusters, D)", nameof(InitialCentroids));
        }
    }
}
