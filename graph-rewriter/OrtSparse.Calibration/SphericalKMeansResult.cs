namespace OrtSparse.Calibration;

/// <summary>The outcome of <see cref="SphericalKMeans.Fit"/>.</summary>
public sealed class SphericalKMeansResult
{
    internal SphericalKMeansResult(CalibrationTensor centroids, int[] assignments, int iterations, bool converged,
        double meanCosine, int emptyClusters, int reseededClusters)
    {
        Centroids = centroids;
        Assignments = assignments;
        Iterations = iterations;
        Converged = converged;
        MeanCosine = meanCosine;
        EmptyClusters = emptyClusters;
        ReseededClusters = reseededClusters;
    }

    /// <summary>[C, D] unit-norm centroids (the <c>saap</c> <c>method_data_0</c> of one KV head).</summary>
    public CalibrationTensor Centroids { get; }

    /// <summary>Each row's cluster under the returned centroids: the largest cosine similarity, the lower id on ties (zero rows: cluster 0).</summary>
    public IReadOnlyList<int> Assignments { get; }

    /// <summary>The centroid updates made.</summary>
    public int Iterations { get; }

    /// <summary>Whether the iterations stopped because no assignment changed (else <see cref="SphericalKMeansOptions.MaxIterations"/> was reached).</summary>
    public bool Converged { get; }

    /// <summary>The mean cosine similarity of the non-zero rows to their centroids: the objective k-means maximises.</summary>
    public double MeanCosine { get; }

    /// <summary>Clusters no row is assigned to in the end (possible when the data has fewer distinct directions than clusters).</summary>
    public int EmptyClusters { get; }

    /// <summary>How many times, over all iterations, an empty cluster was re-seeded from the row farthest from its centroid.</summary>
    public int ReseededClusters { get; }
}
