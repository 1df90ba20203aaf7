using System.Buffers.Binary;
using System.Globalization;
using System.Numerics.Tensors;
using System.Security.Cryptography;

namespace OrtSparse.Runtime.Sampling;

/// <summary>
/// Picks each next token of one sequence from the model's logits under <see cref="SamplingOptions"/>. Holds its own
/// seeded <see cref="Xoshiro256StarStar"/> and scratch buffers sized to the largest vocabulary seen, so a call
/// allocates nothing after the first. Not thread-safe: use one sampler per sequence.
/// </summary>
/// <remarks>
/// <para>
/// A step runs, in Hugging Face transformers' order: the repetition penalty, then (unless greedy) temperature,
/// top-k, top-p and min-p, a softmax in double precision, and one draw. Top-k, top-p and min-p each keep a prefix
/// of the tokens ranked by probability (ties: lower id first), so the kept set is the shortest of the three prefixes.
/// </para>
/// <para>
/// The draw takes one <see cref="Xoshiro256StarStar.NextDouble"/> <c>u</c> per sampled step (greedy steps take
/// none) and returns the first kept token, in ascending id order, at which the cumulative probability of the kept
/// tokens exceeds <c>u</c>. Given the seed, the tokens are then a function of the logits and previous tokens; across
/// CPUs they can differ only where a draw falls within rounding error (of the vectorised exponential) of a boundary.
/// </para>
/// </remarks>
public sealed class TokenSampler
{
    // The first search for the nucleus looks only at tokens at least this probable relative to the most probable
    // one (usually a few hundred) and searches all tokens only when those do not hold top-p's mass.
    private const double NucleusPruneWeight = 1e-4;

    private readonly Xoshiro256StarStar _generator;
    // Per token: the penalised logit, then its softmax weight exp((x - max) / temperature).
    private double[] _scores = [];
    // Token ids: the top-k heap, then the tokens searched for the nucleus.
    private int[] _candidates = [];
    // CompareByRank, bound once: sorting with a struct comparer would box it on every call.
    private readonly Comparison<int> _byRank;

    /// <summary>A sampler for one sequence.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range (<see cref="SamplingOptions.Validate"/>).</exception>
    public TokenSampler(SamplingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
        Seed = options.Seed ?? SeedFromOperatingSystem();
        _generator = new Xoshiro256StarStar(Seed);
        _byRank = CompareByRank;
    }

    /// <summary>The options it samples with.</summary>
    public SamplingOptions Options { get; }

    /// <summary>The seed of its generator: <see cref="SamplingOptions.Seed"/>, or the one drawn when that is null (log it to replay a run).</summary>
    public long Seed { get; }

    /// <summary>The next token.</summary>
    /// <param name="logits">The model's scores for the next token, one per vocabulary entry; not modified.</param>
    /// <param name="previousTokens">The sequence so far, prompt included: the tokens the repetition penalty applies to.</param>
    /// <returns>A token id in [0, <c>logits.Length</c>).</returns>
    /// <exception cref="ArgumentException"><paramref name="logits"/> is empty, or a previous token is not in the vocabulary.</exception>
    /// <exception cref="InvalidOperationException">A logit is NaN or infinite (the message names the first).</exception>
    public int Sample(ReadOnlySpan<float> logits, ReadOnlySpan<int> previousTokens)
    {
        if (logits.IsEmpty)
        {
            throw new ArgumentException("The logits are empty: the vocabulary must have at least one token.", nameof(logits));
        }
        var vocabulary = logits.Length;
        if (_scores.Length < vocabulary)
        {
            _scores = new double[vocabulary];
        }
        var scores = _scores.AsSpan(0, vocabulary);
        CopyPenalised(logits, previousTokens, scores);
        var best = ArgMax(scores);
        if (Options.IsGreedy)
        {
            return best;
        }

        var weights = scores;
        var total = ToWeights(weights, weights[best], Options.Temperature);
        var lastKept = -1;
        Span<int> pool = default;
        var poolMass = total;
        if (Options.TopK > 0 && Options.TopK < vocabulary)
        {
            pool = TopK(Candidates(vocabulary)[..Options.TopK], vocabulary);
            lastKept = pool[0];
            poolMass = Mass(weights, pool);
        }
        if (Options.TopP < 1)
        {
            if (pool.IsEmpty)
            {
                pool = Candidates(vocabulary);
                for (var token = 0; token < pool.Length; token++)
                {
                    pool[token] = token;
                }
            }
            lastKept = NucleusEnd(weights, pool, Options.TopP * poolMass);
        }
        return Draw(weights, lastKept);
    }

    // The logits in double, each token of the sequence penalised once (from its own logit, so repeats do not compound).
    private void CopyPenalised(ReadOnlySpan<float> logits, ReadOnlySpan<int> previousTokens, Span<double> scores)
    {
        for (var token = 0; token < logits.Length; token++)
        {
            var logit = logits[token];
            if (!float.IsFinite(logit))
            {
                throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                    $"logits[{token}] is {logit}: the model produced a non-finite score ({logits.Length} logits)."));
            }
            scores[token] = logit;
        }
        var penalty = Options.RepetitionPenalty;
        for (var position = 0; position < previousTokens.Length; position++)
        {
            var token = previousTokens[position];
            if ((uint)token >= (uint)logits.Length)
            {
                throw new ArgumentOutOfRangeException(nameof(previousTokens), token,
                    $"previousTokens[{position}] ({token}) is not a token id of the {logits.Length}-token vocabulary.");
            }
            double logit = logits[token];
            scores[token] = logit > 0 ? logit / penalty : logit * penalty;
        }
    }

    // The first index of the largest score: ties go to the lowest token id.
    private static int ArgMax(ReadOnlySpan<double> scores)
    {
        var best = 0;
        for (var token = 1; token < scores.Length; token++)
        {
            if (scores[token] > scores[best])
            {
                best = token;
            }
        }
        return best;
    }

    // Replaces each score by exp((score - max) / temperature), the most probable token's weight being exactly 1;
    // subtracting first keeps tiny temperatures from overflowing. Returns the sum of the weights. Vectorised: the
    // exponential is the sampler's main cost on large vocabularies.
    private static double ToWeights(Span<double> scores, double max, double temperature)
    {
        TensorPrimitives.Subtract(scores, max, scores);
        if (temperature != 1)
        {
            TensorPrimitives.Divide(scores, temperature, scores);
        }
        TensorPrimitives.Exp(scores, scores);
        return TensorPrimitives.Sum<double>(scores);
    }

    private Span<int> Candidates(int vocabulary)
    {
        if (_candidates.Length < vocabulary)
        {
            _candidates = new int[vocabulary];
        }
        return _candidates.AsSpan(0, vocabulary);
    }

    // The k best-ranked tokens, as a heap whose root (heap[0]) is the worst ranked of them: O(V log k).
    private Span<int> TopK(Span<int> heap, int vocabulary)
    {
        for (var token = 0; token < heap.Length; token++)
        {
            heap[token] = token;
        }
        for (var node = heap.Length / 2 - 1; node >= 0; node--)
        {
            SiftDown(heap, node);
        }
        for (var token = heap.Length; token < vocabulary; token++)
        {
            if (CompareByRank(token, heap[0]) < 0)
            {
                heap[0] = token;
                SiftDown(heap, 0);
            }
        }
        return heap;
    }

    // Moves heap[node] down until no child ranks below it.
    private void SiftDown(Span<int> heap, int node)
    {
        while (true)
        {
            var worst = node;
            for (var child = 2 * node + 1; child <= 2 * node + 2 && child < heap.Length; child++)
            {
                if (CompareByRank(heap[child], heap[worst]) > 0)
                {
                    worst = child;
                }
            }
            if (worst == node)
            {
                return;
            }
            (heap[node], heap[worst]) = (heap[worst], heap[node]);
            node = worst;
        }
    }

    // The last token of the nucleus: walking the pool in rank order, the first at which the cumulative weight
    // reaches `mass`. Tokens min-p drops are a suffix of the ranking and are not searched; when the searched tokens
    // do not reach `mass`, min-p's cut is the shorter one and the last of them is returned.
    private int NucleusEnd(ReadOnlySpan<double> weights, Span<int> pool, double mass)
    {
        var searched = pool[..MoveToFront(weights, pool, Math.Max(Options.MinP, NucleusPruneWeight))];
        if (Options.MinP < NucleusPruneWeight && Mass(weights, searched) < mass)
        {
            searched = pool[..MoveToFront(weights, pool, Options.MinP)];
        }
        searched.Sort(_byRank);
        var cumulative = 0.0;
        foreach (var token in searched)
        {
            cumulative += weights[token];
            if (cumulative >= mass)
            {
                return token;
            }
        }
        return searched[^1];
    }

    // Moves the tokens of weight ≥ floor to the front of the pool; returns how many. Never 0: the most probable
    // token, of weight 1, is in every pool and floor ≤ 1.
    private static int MoveToFront(ReadOnlySpan<double> weights, Span<int> pool, double floor)
    {
        var count = 0;
        for (var index = 0; index < pool.Length; index++)
        {
            if (weights[pool[index]] >= floor)
            {
                (pool[count], pool[index]) = (pool[index], pool[count]);
                count++;
            }
        }
        return count;
    }

    private static double Mass(ReadOnlySpan<double> weights, ReadOnlySpan<int> tokens)
    {
        var mass = 0.0;
        foreach (var token in tokens)
        {
            mass += weights[token];
        }
        return mass;
    }

    // Inverse-CDF draw over the kept tokens in ascending id order. Kept: ranked no lower than lastKept (-1: no cut)
    // and, for min-p, of weight ≥ MinP (weights are relative to the most probable, so that is min-p's test).
    private int Draw(ReadOnlySpan<double> weights, int lastKept)
    {
        var minP = Options.MinP;
        var cutWeight = lastKept < 0 ? -1 : weights[lastKept];
        var keptMass = 0.0;
        for (var token = 0; token < weights.Length; token++)
        {
            var weight = weights[token];
            if (IsKept(weight, token, minP, cutWeight, lastKept))
            {
                keptMass += weight;
            }
        }
        var target = _generator.NextDouble() * keptMass;
        var cumulative = 0.0;
        var lastPositive = -1;
        for (var token = 0; token < weights.Length; token++)
        {
            var weight = weights[token];
            if (weight > 0 && IsKept(weight, token, minP, cutWeight, lastKept))
            {
                cumulative += weight;
                lastPositive = token;
                if (cumulative > target)
                {
                    return token;
                }
            }
        }
        // Only when u * keptMass rounds up to keptMass itself.
        return lastPositive;
    }

    // Min-p keeps it, and it ranks no lower than the cut: a larger weight, or the same weight and an id no larger.
    private static bool IsKept(double weight, int token, double minP, double cutWeight, int lastKept) =>
        weight >= minP && (weight > cutWeight || (weight == cutWeight && token <= lastKept));

    private static long SeedFromOperatingSystem()
    {
        Span<byte> bytes = stackalloc byte[sizeof(long)];
        RandomNumberGenerator.Fill(bytes);
        return BinaryPrimitives.ReadInt64LittleEndian(bytes);
    }

    // Orders token ids by weight, highest first, then by id: a total order, so sorts and cuts are deterministic.
    private int CompareByRank(int a, int b)
    {
        var byWeight = _scores[b].CompareTo(_scores[a]);
        return byWeight != 0 ? byWeight : a.CompareTo(b);
    }
}
