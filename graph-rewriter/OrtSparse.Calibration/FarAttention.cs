using System.Numerics.Tensors;

namespace OrtSparse.Calibration;

/// <summary>The keys a query may see: positions [<see cref="Start"/>, <see cref="End"/>) of the key rows.</summary>
/// <param name="Start">The first visible key (the start of the query's sequence when sequences are concatenated).</param>
/// <param name="End">One past the last visible key (the query's own position plus one, for causal attention).</param>
public readonly record struct KeyRange(int Start, int End);

/// <summary>Settings of <see cref="FarAttention.ClusterMass"/>; the sparse-method defaults match the op's attributes.</summary>
public sealed record FarAttentionOptions
{
    /// <summary>The softmax scale that multiplies <c>q·k</c>, usually <c>1/√D</c>.</summary>
    public required float Scale { get; init; }

    /// <summary>Positive: scores become <c>softcap·tanh(score/softcap)</c> as in the op. Default 0 (off).</summary>
    public float Softcap { get; init; }

    /// <summary>The first keys of each range, always attended by the op and so not "far". Default 4.</summary>
    public int Sink { get; init; } = 4;

    /// <summary>The last keys of each range, always attended by the op and so not "far". Default 64.</summary>
    public int Window { get; init; } = 64;

    /// <summary>Threads to use; -1 (the default) for all cores. The result does not depend on it.</summary>
    public int MaxDegreeOfParallelism { get; init; } = -1;

    internal void Validate()
    {
        if (!float.IsFinite(Scale) || Scale == 0)
        {
            throw new ArgumentOutOfRangeException(nameof(Scale), Scale, "the scale must be finite and non-zero");
        }
        if (!float.IsFinite(Softcap) || Softcap < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(Softcap), Softcap, "the softcap must be finite and not negative");
        }
        ArgumentOutOfRangeException.ThrowIfNegative(Sink);
        ArgumentOutOfRangeException.ThrowIfNegative(Window);
        if (MaxDegreeOfParallelism is 0 or < -1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxDegreeOfParallelism), MaxDegreeOfParallelism, "must be -1 (all cores) or positive");
        }
    }
}

/// <summary>
/// The training targets of the <c>saap</c> classifiers: where a query's exact attention goes among the
/// key clusters, counting only the keys the method must choose between. The op always reads a range's
/// sink and window, so only the middle keys [Start + Sink, End − Window) — the keys far from the
/// query — are scored; their softmax, normalised over the middle alone, is summed per cluster.
/// </summary>
public static class FarAttention
{
    /// <summary>
    /// [Nq, C]: row <c>i</c> is the distribution of query <c>i</c>'s attention over the clusters of its
    /// far keys (rows sum to 1), or all zeros for a query whose range has no far keys.
    /// </summary>
    /// <param name="queries">[Nq, D] query rows of one query head (pre-rotary, as the op scores them).</param>
    /// <param name="keys">[Nk, D] key rows of its KV head.</param>
    /// <param name="dimension">D, at least 1.</param>
    /// <param name="keyClusters">[Nk] each key's cluster, in [0, <paramref name="clusterCount"/>).</param>
    /// <param name="clusterCount">C, at least 1.</param>
    /// <param name="visibleKeys">[Nq] the keys each query sees.</param>
    /// <param name="options">The scale and which keys are far.</param>
    public static float[] ClusterMass(ReadOnlyMemory<float> queries, ReadOnlyMemory<float> keys, int dimension,
        ReadOnlyMemory<int> keyClusters, int clusterCount, ReadOnlyMemory<KeyRange> visibleKeys, FarAttentionOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var queryCount = Check.Rows(queries.Span, dimension, nameof(queries), nameof(dimension));
        var keyCount = Check.Rows(keys.Span, dimension, nameof(keys), nameof(dimension));
        Check.Finite(queries.Span, dimension, nameof(queries));
        Check.Finite(keys.Span, dimension, nameof(keys));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(clusterCount);
        CheckClusters(keyClusters.Span, keyCount, clusterCount);
        CheckRanges(visibleKeys.Span, queryCount, keyCount);

        var mass = new float[queryCount * clusterCount];
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = options.MaxDegreeOfParallelism };
        Parallel.For(0, queryCount, parallel, q =>
        {
            var range = visibleKeys.Span[q];
            var first = range.Start + options.Sink;
            var count = range.End - options.Window - first;
            if (count > 0)
            {
                QueryMass(queries.Span.Slice(q * dimension, dimension), keys.Span.Slice(first * dimension, count * dimension),
                    keyClusters.Span.Slice(first, count), options, mass.AsSpan(q * clusterCount, clusterCount));
            }
        });
        return mass;
    }

    private static void QueryMass(ReadOnlySpan<float> query, ReadOnlySpan<float> keys, ReadOnlySpan<int> clusters,
        FarAttentionOptions options, Span<float> mass)
    {
        var dimension = query.Length;
        var scores = new float[clusters.Length];
        for (var j = 0; j < scores.Length; j++)
        {
            scores[j] = TensorPrimitives.Dot(query, keys.Slice(j * dimension, dimension));
        }
        TensorPrimitives.Multiply(scores, options.Scale, scores);
        if (options.Softcap > 0)
        {
            TensorPrimitives.Divide(scores, options.Softcap, scores);
            TensorPrimitives.Tanh(scores, scores);
            TensorPrimitives.Multiply(scores, options.Softcap, scores);
        }
        TensorPrimitives.Subtract(scores, TensorPrimitives.Max(scores), scores);
        TensorPrimitives.Exp(scores, scores);

        Span<double> clusterSums = mass.Length <= 1024 ? stackalloc double[mass.Length] : new double[mass.Length];
        clusterSums.Clear();
        var total = 0.0;
        for (var j = 0; j < scores.Length; j++)
        {
            clusterSums[clusters[j]] += scores[j];
            total += scores[j];
        }
        for (var c = 0; c < mass.Length; c++)
        {
            mass[c] = (float)(clusterSums[c] / total);
        }
    }

    private static void CheckClusters(ReadOnlySpan<int> keyClusters, int keyCount, int clusterCount)
    {
        if (keyClusters.Length != keyCount)
        {
            throw new ArgumentException($"keyClusters has {keyClusters.Length} entries for {keyCount} keys", nameof(keyClusters));
        }
        for (var j = 0; j < keyClusters.Length; j++)
        {
            if ((uint)keyClusters[j] >= (uint)clusterCount)
            {
                throw new ArgumentOutOfRangeException(nameof(keyClusters), $"keyClusters[{j}] = {keyClusters[j]} is not a cluster id in [0, {clusterCount})");
            }
        }
    }

    private static void CheckRanges(ReadOnlySpan<KeyRange> visibleKeys, int queryCount, int keyCount)
    {
        if (visibleKeys.Length != queryCount)
        {
            throw new ArgumentException($"visibleKeys has {visibleKeys.Length} entries for {queryCount} queries", nameof(visibleKeys));
        }
        for (var i = 0; i < visibleKeys.Length; i++)
        {
            var (start, end) = visibleKeys[i];
            if (start < 0 || start > end || end > keyCount)
            {
                throw new ArgumentOutOfRangeException(nameof(visibleKeys), $"visibleKeys[{i}] = [{start}, {end}) is not a range of the {keyCount} keys");
            }
        }
    }
}
