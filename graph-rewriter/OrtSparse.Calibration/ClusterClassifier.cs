using System.Numerics.Tensors;

namespace OrtSparse.Calibration;

/// <summary>
/// Trains the <c>saap</c> classifier of one query head: an MLP from the raw query to cluster logits whose
/// softmax should match where the query's far attention goes (<see cref="FarAttention.ClusterMass"/>).
/// The loss is the cross-entropy with those soft targets (equivalently the KL divergence from them),
/// which rewards putting the clusters that hold the mass first; what the op needs, and what the reports
/// measure, is the mass captured by the top-ranked clusters.
/// </summary>
public static class ClusterClassifier
{
    /// <summary>
    /// Trains a classifier on the queries whose targets are not all zero, after setting
    /// <see cref="ClusterClassifierOptions.HeldOutFraction"/> of them aside to measure it.
    /// Inputs are standardised per dimension for training, and the standardisation is folded into the
    /// first layer of the result.
    /// </summary>
    /// <param name="queries">[N, D] raw (pre-rotary) queries of one query head.</param>
    /// <param name="targets">[N, C] non-negative cluster masses per query (rows are normalised; zero rows are skipped).</param>
    /// <param name="centroids">[C, D] the KV head's unit centroids: the baseline ranks clusters by <c>centroid·q</c>.</param>
    /// <param name="options">Network size, optimiser and split settings.</param>
    /// <param name="progress">Told after every epoch; may be null.</param>
    /// <param name="cancellationToken">Stops training between batches.</param>
    public static ClusterClassifierTraining Train(ReadOnlySpan<float> queries, ReadOnlySpan<float> targets, CalibrationTensor centroids,
        ClusterClassifierOptions options, IProgress<ClassifierProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var (dimension, clusterCount) = CentroidShape(centroids);
        options.Validate(clusterCount);
        var usable = UsableQueries(queries, targets, dimension, clusterCount);
        var random = new Random(options.Seed);
        random.Shuffle(usable);
        var heldOutCount = (int)Math.Round(usable.Length * options.HeldOutFraction);
        if (usable.Length - heldOutCount < 1)
        {
            throw new ArgumentException($"{usable.Length} queries have far keys; with HeldOutFraction = {options.HeldOutFraction} none is left to train on", nameof(targets));
        }
        var heldOut = usable[..heldOutCount];
        var training = usable[heldOutCount..];

        var trainingQueries = Gather(queries, dimension, training);
        var heldOutQueries = Gather(queries, dimension, heldOut);
        var (mean, scale) = Standardisation(trainingQueries, dimension);
        var trainingX = Standardise(trainingQueries, mean, scale);
        var heldOutX = Standardise(heldOutQueries, mean, scale);
        var trainingTargets = GatherTargets(targets, clusterCount, training);
        var heldOutTargets = GatherTargets(targets, clusterCount, heldOut);

        var parallel = new ParallelOptions { MaxDegreeOfParallelism = options.MaxDegreeOfParallelism, CancellationToken = cancellationToken };
        var batchSize = Math.Min(options.BatchSize, training.Length);
        var network = new ClassifierNetwork(dimension, options.HiddenUnits, MeanRow(trainingTargets, clusterCount), batchSize,
            new GaussianSampler(random), parallel);
        var order = Enumerable.Range(0, training.Length).ToArray();
        var batchX = new float[batchSize * dimension];
        var batchTargets = new float[batchSize * clusterCount];
        var trainingLoss = double.NaN;
        for (var epoch = 1; epoch <= options.Epochs; epoch++)
        {
            random.Shuffle(order);
            var lossSum = 0.0;
            for (var first = 0; first < order.Length; first += batchSize)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var rows = Math.Min(batchSize, order.Length - first);
                for (var r = 0; r < rows; r++)
                {
                    trainingX.AsSpan(order[first + r] * dimension, dimension).CopyTo(batchX.AsSpan(r * dimension));
                    trainingTargets.AsSpan(order[first + r] * clusterCount, clusterCount).CopyTo(batchTargets.AsSpan(r * clusterCount));
                }
                lossSum += network.TrainBatch(batchX, batchTargets, rows, (float)options.LearningRate);
            }
            trainingLoss = lossSum / training.Length;
            if (progress is not null)
            {
                double? heldOutLoss = null, heldOutCaptured = null;
                if (heldOut.Length > 0)
                {
                    var (loss, captured) = network.Evaluate(heldOutX, heldOutTargets, heldOut.Length, options.TopClusters);
                    (heldOutLoss, heldOutCaptured) = (loss / heldOut.Length, captured / heldOut.Length);
                }
                progress.Report(new ClassifierProgress(epoch, options.Epochs, trainingLoss, heldOutLoss, heldOutCaptured));
            }
        }

        var model = network.ToModel(mean, scale);
        var report = heldOut.Length > 0
            ? Evaluate(model, heldOutQueries, heldOutTargets, centroids, options.TopClusters, parallel)
            : null;
        return new ClusterClassifierTraining(model, training.Length, report, trainingLoss);
    }

    /// <summary>Measures a classifier on queries with known targets, against the <c>centroid·q</c> baseline and the oracle.</summary>
    /// <param name="model">The classifier.</param>
    /// <param name="queries">[N, D] raw queries.</param>
    /// <param name="targets">[N, C] non-negative cluster masses (rows are normalised; zero rows are skipped).</param>
    /// <param name="centroids">[C, D] the KV head's unit centroids.</param>
    /// <param name="topClusters">ℓ, in [1, C].</param>
    public static CapturedMass Evaluate(ClusterClassifierModel model, ReadOnlySpan<float> queries, ReadOnlySpan<float> targets,
        CalibrationTensor centroids, int topClusters)
    {
        ArgumentNullException.ThrowIfNull(model);
        var (dimension, clusterCount) = CentroidShape(centroids);
        if (model.Dimension != dimension || model.ClusterCount != clusterCount)
        {
            throw new ArgumentException($"the classifier maps D = {model.Dimension} to C = {model.ClusterCount}, the centroids {centroids} are [C, D]", nameof(model));
        }
        if (topClusters < 1 || topClusters > clusterCount)
        {
            throw new ArgumentOutOfRangeException(nameof(topClusters), topClusters, $"ℓ must be between 1 and the cluster count ({clusterCount})");
        }
        var usable = UsableQueries(queries, targets, dimension, clusterCount);
        return Evaluate(model, Gather(queries, dimension, usable), GatherTargets(targets, clusterCount, usable), centroids,
            topClusters, new ParallelOptions());
    }

    private static CapturedMass Evaluate(ClusterClassifierModel model, float[] queries, float[] targets, CalibrationTensor centroids,
        int topClusters, ParallelOptions parallel)
    {
        var clusterCount = model.ClusterCount;
        var rows = targets.Length / clusterCount;
        var logits = new float[rows * clusterCount];
        var similarity = new float[rows * clusterCount];
        model.Logits(queries, rows, logits, parallel);
        DenseMath.ProductWithTransposed(queries, rows, centroids.Values, similarity, parallel);
        double classifier = 0, baseline = 0, oracle = 0;
        for (var r = 0; r < rows; r++)
        {
            var target = targets.AsSpan(r * clusterCount, clusterCount);
            classifier += Ranking.CapturedMass(logits.AsSpan(r * clusterCount, clusterCount), target, topClusters);
            baseline += Ranking.CapturedMass(similarity.AsSpan(r * clusterCount, clusterCount), target, topClusters);
            oracle += Ranking.CapturedMass(target, target, topClusters);
        }
        var count = Math.Max(rows, 1);
        return new CapturedMass(topClusters, rows, classifier / count, baseline / count, oracle / count);
    }

    private static (int Dimension, int ClusterCount) CentroidShape(CalibrationTensor centroids)
    {
        ArgumentNullException.ThrowIfNull(centroids);
        if (centroids.Shape.Count != 2 || centroids.Shape[0] < 1 || centroids.Shape[1] < 1)
        {
            throw new ArgumentException($"centroids has shape {centroids}; expected [C, D] with C, D ≥ 1", nameof(centroids));
        }
        return (centroids.Shape[1], centroids.Shape[0]);
    }

    /// <summary>The indices of queries whose targets hold some mass, after checking shapes and values.</summary>
    private static int[] UsableQueries(ReadOnlySpan<float> queries, ReadOnlySpan<float> targets, int dimension, int clusterCount)
    {
        var queryCount = Check.Rows(queries, dimension, nameof(queries), "D");
        Check.Finite(queries, dimension, nameof(queries));
        var targetCount = Check.Rows(targets, clusterCount, nameof(targets), "C");
        if (targetCount != queryCount)
        {
            throw new ArgumentException($"targets has {targetCount} rows for {queryCount} queries", nameof(targets));
        }
        var usable = new List<int>();
        for (var i = 0; i < queryCount; i++)
        {
            var row = targets.Slice(i * clusterCount, clusterCount);
            for (var c = 0; c < clusterCount; c++)
            {
                if (!(row[c] >= 0 && float.IsFinite(row[c])))
                {
                    throw new ArgumentException($"targets[{i}, {c}] is {row[c]}; cluster masses must be finite and non-negative", nameof(targets));
                }
            }
            if (TensorPrimitives.Sum(row) > 0)
            {
                usable.Add(i);
            }
        }
        return [.. usable];
    }

    /// <summary>Per-dimension mean and standard deviation of [N, D] queries (1 where a dimension is constant).</summary>
    private static (double[] Mean, double[] Scale) Standardisation(float[] queries, int dimension)
    {
        var rows = queries.Length / dimension;
        var mean = new double[dimension];
        var scale = new double[dimension];
        for (var i = 0; i < queries.Length; i++)
        {
            mean[i % dimension] += queries[i];
        }
        for (var d = 0; d < dimension; d++)
        {
            mean[d] /= rows;
        }
        for (var i = 0; i < queries.Length; i++)
        {
            var deviation = queries[i] - mean[i % dimension];
            scale[i % dimension] += deviation * deviation;
        }
        for (var d = 0; d < dimension; d++)
        {
            var deviation = Math.Sqrt(scale[d] / rows);
            scale[d] = deviation > 0 ? deviation : 1;
        }
        return (mean, scale);
    }

    /// <summary>(q − mean) / scale per dimension, as a new array.</summary>
    private static float[] Standardise(float[] queries, double[] mean, double[] scale)
    {
        var standardised = new float[queries.Length];
        for (var i = 0; i < queries.Length; i++)
        {
            standardised[i] = (float)((queries[i] - mean[i % mean.Length]) / scale[i % mean.Length]);
        }
        return standardised;
    }

    /// <summary>The chosen query rows.</summary>
    private static float[] Gather(ReadOnlySpan<float> queries, int dimension, int[] rows)
    {
        var gathered = new float[rows.Length * dimension];
        for (var r = 0; r < rows.Length; r++)
        {
            queries.Slice(rows[r] * dimension, dimension).CopyTo(gathered.AsSpan(r * dimension));
        }
        return gathered;
    }

    /// <summary>The chosen target rows, each normalised to sum to 1.</summary>
    private static float[] GatherTargets(ReadOnlySpan<float> targets, int clusterCount, int[] rows)
    {
        var gathered = new float[rows.Length * clusterCount];
        for (var r = 0; r < rows.Length; r++)
        {
            var row = gathered.AsSpan(r * clusterCount, clusterCount);
            targets.Slice(rows[r] * clusterCount, clusterCount).CopyTo(row);
            TensorPrimitives.Divide(row, TensorPrimitives.Sum(row), row);
        }
        return gathered;
    }

    private static float[] MeanRow(float[] matrix, int columns)
    {
        var mean = new float[columns];
        var rows = matrix.Length / columns;
        DenseMath.ColumnSums(matrix, rows, mean);
        TensorPrimitives.Divide(mean, rows, mean);
        return mean;
    }
}
