namespace OrtSparse.Calibration.Tests;

public sealed class FarAttentionTests
{
    // Ten 2-d keys in three clusters.
    private static readonly float[] Keys = [1, 0, 0, 1, 2, 1, -1, 0, 0.5f, 0.5f, 1, 1, 0, -1, 3, 0, 1, 2, -2, 1];
    private static readonly int[] Clusters = [0, 1, 0, 1, 2, 0, 2, 1, 2, 0];

    /// <summary>Softmax of scale·q·k (optionally soft-capped) over keys [first, end), summed per cluster, in double.</summary>
    private static double[] Expected(float[] query, int first, int end, double scale, double softcap = 0)
    {
        var scores = Enumerable.Range(first, end - first).Select(j =>
        {
            var score = scale * Synthetic.Dot(query, Keys.AsSpan(2 * j, 2));
            return softcap > 0 ? softcap * Math.Tanh(score / softcap) : score;
        }).ToArray();
        var weights = scores.Select(s => Math.Exp(s - scores.Max())).ToArray();
        var mass = new double[3];
        for (var j = first; j < end; j++)
        {
            mass[Clusters[j]] += weights[j - first] / weights.Sum();
        }
        return mass;
    }

    [Fact]
    public void SumsTheSoftmaxOfTheMiddleKeysPerCluster()
    {
        float[] queries = [1, 2, -1, 0.5f, 0.3f, 0.3f, 2, -1];
        KeyRange[] visible = [new(0, 10), new(0, 5), new(3, 10), new(0, 7)];
        var options = new FarAttentionOptions { Scale = 0.7f, Sink = 2, Window = 3 };

        var mass = FarAttention.ClusterMass(queries, Keys, 2, Clusters, 3, visible, options);

        Assert.Equal(Expected([1, 2], 2, 7, 0.7), mass[0..3].Select(m => (double)m), new Tolerance(1e-6));
        Assert.Equal([0f, 0, 0], mass[3..6]);   // [0, 5) minus sink 2 and window 3 leaves no far key
        Assert.Equal(Expected([0.3f, 0.3f], 5, 7, 0.7), mass[6..9].Select(m => (double)m), new Tolerance(1e-6));   // the sink starts at the range's start
        Assert.Equal(Expected([2, -1], 2, 4, 0.7), mass[9..12].Select(m => (double)m), new Tolerance(1e-6));
        Assert.Equal(1.0, mass[0..3].Sum(), 1e-6);
    }

    [Fact]
    public void AppliesTheSoftcapBeforeTheSoftmax()
    {
        var options = new FarAttentionOptions { Scale = 2, Softcap = 1.5f, Sink = 0, Window = 0 };

        var mass = FarAttention.ClusterMass(new float[] { 1, 2 }, Keys, 2, Clusters, 3, new KeyRange[] { new(0, 10) }, options);

        Assert.Equal(Expected([1, 2], 0, 10, 2, softcap: 1.5), mass.Select(m => (double)m), new Tolerance(1e-6));
        Assert.NotEqual(Expected([1, 2], 0, 10, 2), mass.Select(m => (double)m), new Tolerance(1e-3));
    }

    [Fact]
    public void RejectsBadInputNamingTheProblem()
    {
        var options = new FarAttentionOptions { Scale = 1 };
        KeyRange[] one = [new(0, 10)];
        var cluster = Assert.Throws<ArgumentOutOfRangeException>(() => FarAttention.ClusterMass(new float[2], Keys, 2, Clusters, 2, one, options));
        Assert.Contains("keyClusters[4] = 2", cluster.Message);
        var range = Assert.Throws<ArgumentOutOfRangeException>(() => FarAttention.ClusterMass(new float[2], Keys, 2, Clusters, 3, new KeyRange[] { new(4, 11) }, options));
        Assert.Contains("visibleKeys[0] = [4, 11)", range.Message);
        var count = Assert.Throws<ArgumentException>(() => FarAttention.ClusterMass(new float[4], Keys, 2, Clusters, 3, one, options));
        Assert.Contains("1 entries for 2 queries", count.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => FarAttention.ClusterMass(new float[2], Keys, 2, Clusters, 3, one, options with { Scale = float.NaN }));
        Assert.Throws<ArgumentOutOfRangeException>(() => FarAttention.ClusterMass(new float[2], Keys, 2, Clusters, 3, one, options with { Window = -1 }));
    }

    /// <summary>Compares sequences element-wise within an absolute tolerance.</summary>
    private sealed class Tolerance(double tolerance) : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) <= tolerance;

        public int GetHashCode(double value) => 0;
    }
}
