namespace OrtSparse.Calibration;

/// <summary>Settings of <see cref="ClusterClassifier.Train"/>.</summary>
public sealed record ClusterClassifierOptions
{
    /// <summary>The hidden width M. Default 256.</summary>
    public int HiddenUnits { get; init; } = 256;

    /// <summary>Passes over the training queries. Default 20.</summary>
    public int Epochs { get; init; } = 20;

    /// <summary>Queries per Adam step. Default 256.</summary>
    public int BatchSize { get; init; } = 256;

    /// <summary>Adam's step size. Default 1e-3.</summary>
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>The share of the usable queries set aside to measure the result, in [0, 1). Default 0.1.</summary>
    public double HeldOutFraction { get; init; } = 0.1;

    /// <summary>ℓ: reports measure the target mass of the ℓ clusters ranked first. Default 8.</summary>
    public int TopClusters { get; init; } = 8;

    /// <summary>Seeds the split, the initial weights and the batch order; the result depends only on it and the data. Default 0.</summary>
    public int Seed { get; init; }

    /// <summary>Threads to use; -1 (the default) for all cores. The result does not depend on it.</summary>
    public int MaxDegreeOfParallelism { get; init; } = -1;

    internal void Validate(int clusterCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(HiddenUnits);
        ArgumentOutOfRangeException.ThrowIfNegative(Epochs);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(BatchSize);
        if (!(LearningRate > 0 && double.IsFinite(LearningRate)))
        {
            throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "the learning rate must be positive and finite");
        }
        if (!(HeldOutFraction >= 0 && HeldOutFraction < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(HeldOutFraction), HeldOutFraction, "the held-out fraction must be in [0, 1)");
        }
        if (TopClusters < 1 || TopClusters > clusterCount)
        {
            throw new ArgumentOutOfRangeException(nameof(TopClusters), TopClusters, $"ℓ must be between 1 and the cluster count ({clusterCount})");
        }
        if (MaxDegreeOfParallelism is 0 or < -1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxDegreeOfParallelism), MaxDegreeOfParallelism, "must be -1 (all cores) or positive");
        }
    }
}
