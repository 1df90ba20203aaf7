namespace OrtSparse.Calibration.Tests;

public sealed class ClusterClassifierTests
{
    private const int Dimension = 32, ClusterCount = 16, KeyCount = 2048, QueryCount = 3000;
    private static readonly float Scale = 1 / MathF.Sqrt(Dimension);

    /// <summary>A synthetic attention problem with its targets, clusters and centroids.</summary>
    private sealed record Task(float[] Queries, float[] Targets, CalibrationTensor Centroids);

    /// <summary>
    /// Keys lie around 16 orthonormal directions μ_c, with norm <paramref name="keyNorm"/>(c); each query
    /// is a sum Σ x_c μ_c over a few clusters, so that q·k ≈ norm(c)·x_c on cluster c and the far attention
    /// mass concentrates where norm(c)·x_c is largest, while the centroids rank clusters by x_c alone.
    /// </summary>
    private static Task Build(int seed, Func<int, double> keyNorm, Func<Random, (int Cluster, double Weight)[]> queryMix)
    {
        var synthetic = new Synthetic(seed);
        var directions = synthetic.OrthonormalRows(ClusterCount, Dimension);
        var keys = new float[KeyCount * Dimension];
        var keyClusters = new int[KeyCount];
        for (var j = 0; j < KeyCount; j++)
        {
            var c = keyClusters[j] = synthetic.Random.Next(ClusterCount);
            for (var d = 0; d < Dimension; d++)
            {
                keys[j * Dimension + d] = (float)(keyNorm(c) * directions[c][d] + 0.05 * synthetic.Normal());
            }
        }
        var queries = new float[QueryCount * Dimension];
        var visible = new KeyRange[QueryCount];
        for (var i = 0; i < QueryCount; i++)
        {
            foreach (var (cluster, weight) in queryMix(synthetic.Random))
            {
                for (var d = 0; d < Dimension; d++)
                {
                    queries[i * Dimension + d] += (float)(60 * weight * directions[cluster][d]);
                }
            }
            for (var d = 0; d < Dimension; d++)
            {
                queries[i * Dimension + d] += (float)(0.5 * synthetic.Normal());
            }
            visible[i] = new KeyRange(0, synthetic.Random.Next(KeyCount / 2, KeyCount + 1));
        }
        var targets = FarAttention.ClusterMass(queries, keys, Dimension, keyClusters, ClusterCount, visible, new FarAttentionOptions { Scale = Scale });
        var centroids = new float[ClusterCount * Dimension];
        for (var c = 0; c < ClusterCount; c++)
        {
            for (var d = 0; d < Dimension; d++)
            {
                centroids[c * Dimension + d] = (float)directions[c][d];
            }
        }
        return new Task(queries, targets, new CalibrationTensor(centroids, ClusterCount, Dimension));
    }

    /// <summary>Two distinct clusters drawn from <paramref name="candidates"/>.</summary>
    private static (int, int) TwoOf(Random random, int[] candidates)
    {
        var first = candidates[random.Next(candidates.Length)];
        int second;
        do
        {
            second = candidates[random.Next(candidates.Length)];
        }
        while (second == first);
        return (first, second);
    }

    private static readonly int[] AllClusters = [.. Enumerable.Range(0, ClusterCount)];
    private static readonly int[] EvenClusters = [.. AllClusters.Where(c => c % 2 == 0)];
    private static readonly int[] OddClusters = [.. AllClusters.Where(c => c % 2 == 1)];

    /// <summary>Equal key norms; each query points at one main and one secondary cluster.</summary>
    private static Task Symmetric(int seed) => Build(seed, _ => 1, random =>
    {
        var (main, secondary) = TwoOf(random, AllClusters);
        return [(main, 1.0), (secondary, 0.9)];
    });

    /// <summary>
    /// Even clusters have keys three times longer than odd ones. Each query leans more towards two odd
    /// clusters than towards two even ones, so centroid·q ranks the odd clusters first, but 3·0.5 &gt; 1:
    /// the attention mass goes to the even clusters.
    /// </summary>
    private static Task Asymmetric(int seed) => Build(seed, c => c % 2 == 0 ? 3 : 1, random =>
    {
        var (target, secondTarget) = TwoOf(random, EvenClusters);
        var (decoy, secondDecoy) = TwoOf(random, OddClusters);
        return [(target, 0.5), (secondTarget, 0.45), (decoy, 1.0), (secondDecoy, 0.9)];
    });

    private static readonly ClusterClassifierOptions Small = new()
    {
        HiddenUnits = 64, Epochs = 30, BatchSize = 128, LearningRate = 3e-3, HeldOutFraction = 0.2, TopClusters = 2, Seed = 1,
    };

    private static ClusterClassifierTraining Train(Task task, ClusterClassifierOptions options, IProgress<ClassifierProgress>? progress = null) =>
        ClusterClassifier.Train(task.Queries, task.Targets, task.Centroids, options, progress, TestContext.Current.CancellationToken);

    [Fact]
    public void LearnsWhereTheFarAttentionMassIs()
    {
        var task = Symmetric(seed: 20);

        var held = Train(task, Small).HeldOut!;

        Assert.Equal(600, held.Queries);
        Assert.True(held.Oracle > 0.9, $"the synthetic task should concentrate its mass (oracle {held.Oracle:F3})");
        Assert.True(held.ClassifierVersusOracle >= 0.9, $"classifier {held.Classifier:F3} vs oracle {held.Oracle:F3}");
        Assert.True(held.CentroidBaseline >= 0.9 * held.Oracle, $"with equal key norms the baseline works too ({held.CentroidBaseline:F3})");
    }

    [Fact]
    public void BeatsTheCentroidBaselineWhenQueriesAndKeysAreAsymmetric()
    {
        var task = Asymmetric(seed: 21);
        var progress = new List<ClassifierProgress>();

        var training = Train(task, Small, new SynchronousProgress(progress));

        var held = training.HeldOut!;
        Assert.True(held.Oracle > 0.9, $"the synthetic task should concentrate its mass (oracle {held.Oracle:F3})");
        Assert.True(held.ClassifierVersusOracle >= 0.9, $"classifier {held.Classifier:F3} vs oracle {held.Oracle:F3}");
        Assert.True(held.CentroidBaseline < 0.2, $"the baseline should rank the decoys first ({held.CentroidBaseline:F3})");

        Assert.Equal(Enumerable.Range(1, Small.Epochs), progress.Select(p => p.Epoch));
        Assert.True(progress[^1].TrainingLoss < 0.5 * progress[0].TrainingLoss, $"loss {progress[0].TrainingLoss:F3} -> {progress[^1].TrainingLoss:F3}");
        Assert.Equal(progress[^1].TrainingLoss, training.TrainingLoss);
        // The last epoch's report comes from the standardised network, the final one from the folded weights.
        Assert.Equal(progress[^1].HeldOutCapturedMass!.Value, held.Classifier, 1e-3);
    }

    [Fact]
    public void ASeedGivesOneModelWhateverTheThreadCount()
    {
        var task = Asymmetric(seed: 22);
        var options = Small with { Epochs = 2 };

        var single = Train(task, options with { MaxDegreeOfParallelism = 1 }).Model;
        var parallel = Train(task, options).Model;
        var otherSeed = Train(task, options with { Seed = 2 }).Model;

        Assert.Equal(single.W1.Values.ToArray(), parallel.W1.Values.ToArray());
        Assert.Equal(single.B1.Values.ToArray(), parallel.B1.Values.ToArray());
        Assert.Equal(single.W2.Values.ToArray(), parallel.W2.Values.ToArray());
        Assert.NotEqual(single.W1.Values.ToArray(), otherSeed.W1.Values.ToArray());
    }

    [Fact]
    public void WeightsHaveTheOpsLayout()
    {
        var task = Symmetric(seed: 23);
        var model = Train(task, Small with { Epochs = 1, HiddenUnits = 5 }).Model;

        Assert.Equal([Dimension, 5], model.W1.Shape);
        Assert.Equal([5], model.B1.Shape);
        Assert.Equal([6, ClusterCount], model.W2.Shape);
        // z = W2[0..M)ᵀ · relu(W1ᵀ·q + b1) + W2[M], computed here in double from the raw tensors.
        var query = task.Queries.AsSpan(0, Dimension).ToArray();
        var w1 = model.W1.Values.Span;
        var w2 = model.W2.Values.Span;
        var hidden = new double[5];
        for (var m = 0; m < 5; m++)
        {
            hidden[m] = model.B1.Values.Span[m];
            for (var d = 0; d < Dimension; d++)
            {
                hidden[m] += query[d] * (double)w1[d * 5 + m];
            }
            hidden[m] = Math.Max(0, hidden[m]);
        }
        var logits = model.Logits(query);
        for (var c = 0; c < ClusterCount; c++)
        {
            var expected = (double)w2[5 * ClusterCount + c];
            for (var m = 0; m < 5; m++)
            {
                expected += hidden[m] * w2[m * ClusterCount + c];
            }
            Assert.Equal(expected, logits[c], 1e-3 * Math.Max(1, Math.Abs(expected)));
        }

        var reloaded = new ClusterClassifierModel(model.W1, model.B1, model.W2);
        var report = ClusterClassifier.Evaluate(reloaded, task.Queries, task.Targets, task.Centroids, topClusters: 4);
        Assert.Equal(QueryCount, report.Queries);
        Assert.Equal(4, report.TopClusters);
        Assert.Throws<ArgumentException>(() => new ClusterClassifierModel(model.W1, model.B1, model.W1));
    }

    [Fact]
    public void RejectsBadInputNamingTheProblem()
    {
        var task = Symmetric(seed: 24);
        var rows = Assert.Throws<ArgumentException>(() => ClusterClassifier.Train(task.Queries, task.Targets.AsSpan(ClusterCount), task.Centroids, Small,
            cancellationToken: TestContext.Current.CancellationToken));
        Assert.Contains($"targets has {QueryCount - 1} rows for {QueryCount} queries", rows.Message);
        var negative = (float[])task.Targets.Clone();
        negative[5] = -0.1f;
        var value = Assert.Throws<ArgumentException>(() => ClusterClassifier.Train(task.Queries, negative, task.Centroids, Small,
            cancellationToken: TestContext.Current.CancellationToken));
        Assert.Contains("targets[0, 5]", value.Message);
        var none = Assert.Throws<ArgumentException>(() => ClusterClassifier.Train(task.Queries, new float[task.Targets.Length], task.Centroids, Small,
            cancellationToken: TestContext.Current.CancellationToken));
        Assert.Contains("0 queries have far keys", none.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => ClusterClassifier.Train(task.Queries, task.Targets, task.Centroids, Small with { TopClusters = 17 },
            cancellationToken: TestContext.Current.CancellationToken));
        Assert.Throws<ArgumentOutOfRangeException>(() => ClusterClassifier.Train(task.Queries, task.Targets, task.Centroids, Small with { HeldOutFraction = 1 },
            cancellationToken: TestContext.Current.CancellationToken));
    }

    /// <summary>Records reports on the training thread (Progress&lt;T&gt; would post them asynchronously).</summary>
    private sealed class SynchronousProgress(List<ClassifierProgress> reports) : IProgress<ClassifierProgress>
    {
        public void Report(ClassifierProgress value) => reports.Add(value);
    }
}
