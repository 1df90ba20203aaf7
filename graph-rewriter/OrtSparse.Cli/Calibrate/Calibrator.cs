using OrtSparse.Calibration;

namespace OrtSparse.Cli.Calibrate;

/// <summary>Settings of <see cref="Calibrator.Compute"/>.</summary>
public sealed record CalibratorOptions
{
    /// <summary>Which methods to calibrate: loki, saap, hash.</summary>
    public IReadOnlySet<string> Methods { get; init; } = new HashSet<string> { "loki", "saap", "hash" };

    /// <summary>Seed of every random choice; equal inputs and seed give equal files.</summary>
    public int Seed { get; init; }

    /// <summary>saap clusters per KV head (fewer when there are not 8 keys per cluster).</summary>
    public int Clusters { get; init; } = 1024;

    /// <summary>Hidden units of saap's per-head classifier.</summary>
    public int HiddenUnits { get; init; } = 256;

    /// <summary>Training epochs of saap's classifiers.</summary>
    public int Epochs { get; init; } = 20;

    /// <summary>Sink the op will always read (those keys are not "far" for saap's targets).</summary>
    public int Sink { get; init; } = 4;

    /// <summary>Window the op will always read (likewise).</summary>
    public int Window { get; init; } = 64;

    /// <summary>hash: buckets per round.</summary>
    public int Buckets { get; init; } = 16;

    /// <summary>hash: rounds.</summary>
    public int Rounds { get; init; } = 2;
}

/// <summary>Turns captured activations into the calibration tensors of loki (PCA bases), saap (centroids and classifiers) and hash (projections).</summary>
public static class Calibrator
{
    /// <summary>Computes the calibration of every site; layer L is the L-th site.</summary>
    /// <param name="sites">Captured queries and keys.</param>
    /// <param name="options">Methods and their settings.</param>
    /// <param name="log">Where progress and summaries go.</param>
    public static CalibrationData Compute(IReadOnlyList<SiteActivations> sites, CalibratorOptions options, TextWriter log)
    {
        var data = new CalibrationData();
        data.SetMetadata("seed", options.Seed.ToString(System.Globalization.CultureInfo.InvariantCulture));
        data.SetMetadata("methods", string.Join(",", options.Methods.Order()));
        for (var layer = 0; layer < sites.Count; layer++)
        {
            var site = sites[layer];
            int d = site.HeadDim, kvHeads = site.Keys.Length;
            var layerSeed = unchecked(options.Seed * 1000003 + layer);
            if (options.Methods.Contains("loki"))
            {
                var bases = site.Keys.Select(keys => Pca.Fit(keys, d)).ToList();
                data.SetTensor(CalibrationNames.LokiBasis(layer), CalibrationTensor.Stack(bases.Select(b => b.Basis).ToList()));
                log.WriteLine($"layer {layer}: loki bases; rank for 90% of key energy: {string.Join(", ", bases.Select(b => b.RankForVariance(0.9)))} of {d}");
            }
            if (options.Methods.Contains("saap"))
            {
                CalibrateSaap(data, site, layer, layerSeed, options, log);
            }
            if (options.Methods.Contains("hash"))
            {
                data.SetTensor(CalibrationNames.HashProjections(layer), HashProjections.Create(kvHeads, options.Rounds, d, options.Buckets, layerSeed));
            }
        }
        return data;
    }

    private static void CalibrateSaap(CalibrationData data, SiteActivations site, int layer, int seed, CalibratorOptions options, TextWriter log)
    {
        int d = site.HeadDim, kvHeads = site.Keys.Length, group = site.Queries.Length / kvHeads;
        var keyCount = site.Keys[0].Length / d;
        var clusters = Math.Max(1, Math.Min(options.Clusters, keyCount / 8));
        var centroids = new List<CalibrationTensor>();
        var w1 = new List<CalibrationTensor>();
        var b1 = new List<CalibrationTensor>();
        var w2 = new List<CalibrationTensor>();
        var bar = new ProgressBar(log, $"layer {layer}: saap", site.Queries.Length);
        for (var kv = 0; kv < kvHeads; kv++)
        {
            var kmeans = SphericalKMeans.Fit(site.Keys[kv], d, new SphericalKMeansOptions { Clusters = clusters, Seed = seed + kv });
            centroids.Add(kmeans.Centroids);
            for (var member = 0; member < group; member++)
            {
                var head = kv * group + member;
                var targets = FarAttention.ClusterMass(site.Queries[head], site.Keys[kv], d, kmeans.Assignments.ToArray(), clusters, site.VisibleKeys,
                    new FarAttentionOptions { Scale = 1 / MathF.Sqrt(d), Sink = options.Sink, Window = options.Window });
                var training = ClusterClassifier.Train(site.Queries[head], targets, kmeans.Centroids,
                    new ClusterClassifierOptions { HiddenUnits = options.HiddenUnits, Epochs = options.Epochs, Seed = seed + head, TopClusters = Math.Min(8, clusters) });
                w1.Add(training.Model.W1);
                b1.Add(training.Model.B1);
                w2.Add(training.Model.W2);
                var heldOut = training.HeldOut is { } h ? $"held-out mass in top {h.TopClusters}: {h.Classifier:0.000} (centroid baseline {h.CentroidBaseline:0.000}, oracle {h.Oracle:0.000})" : "";
                bar.Report(head + 1, heldOut);
            }
        }
        data.SetTensor(CalibrationNames.SaapCentroids(layer), CalibrationTensor.Stack(centroids));
        data.SetTensor(CalibrationNames.SaapW1(layer), CalibrationTensor.Stack(w1));
        data.SetTensor(CalibrationNames.SaapB1(layer), CalibrationTensor.Stack(b1));
        data.SetTensor(CalibrationNames.SaapW2(layer), CalibrationTensor.Stack(w2));
    }
}
