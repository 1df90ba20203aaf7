namespace OrtSparse.Calibration;

/// <summary>
/// The mean far-attention mass that the top ℓ clusters hold, over queries with far keys, when clusters
/// are ranked by the classifier, by the baseline <c>centroid·q</c>, and by the targets themselves (the
/// best any ranking can do).
/// </summary>
/// <param name="TopClusters">ℓ.</param>
/// <param name="Queries">The queries measured.</param>
/// <param name="Classifier">Mass captured when ranking by the classifier's logits.</param>
/// <param name="CentroidBaseline">Mass captured when ranking by <c>centroid·q</c>.</param>
/// <param name="Oracle">Mass of the ℓ largest target entries.</param>
public sealed record CapturedMass(int TopClusters, int Queries, double Classifier, double CentroidBaseline, double Oracle)
{
    /// <summary>The classifier's captured mass as a fraction of the oracle's (1 when the oracle captures nothing).</summary>
    public double ClassifierVersusOracle => Oracle > 0 ? Classifier / Oracle : 1;
}

/// <summary>The state of training after an epoch.</summary>
/// <param name="Epoch">Epochs done, from 1.</param>
/// <param name="Epochs">Epochs planned.</param>
/// <param name="TrainingLoss">Mean KL divergence from the targets to the prediction over the epoch's batches.</param>
/// <param name="HeldOutLoss">Mean KL divergence on the held-out queries; null without any.</param>
/// <param name="HeldOutCapturedMass">The classifier's captured mass on the held-out queries (see <see cref="CapturedMass"/>); null without any.</param>
public sealed record ClassifierProgress(int Epoch, int Epochs, double TrainingLoss, double? HeldOutLoss, double? HeldOutCapturedMass);

/// <summary>The outcome of <see cref="ClusterClassifier.Train"/>.</summary>
/// <param name="Model">The trained classifier, in the op's layout.</param>
/// <param name="TrainingQueries">The queries trained on.</param>
/// <param name="HeldOut">The result on the held-out queries, against the baseline and the oracle; null without any.</param>
/// <param name="TrainingLoss">Mean KL divergence over the last epoch (NaN after zero epochs).</param>
public sealed record ClusterClassifierTraining(ClusterClassifierModel Model, int TrainingQueries, CapturedMass? HeldOut, double TrainingLoss);
