using System.Numerics.Tensors;
using OrtSparse.Calibration;

namespace OrtSparse.Cli.Bench;

/// <summary>
/// Inputs for one decode step over a long cache: synthetic (<see cref="Synthetic"/>), or the last
/// token of a sequence captured from a real model (<see cref="FromCapture"/>).
/// </summary>
public sealed class BenchCache
{
    /// <summary>[B, 1, Hq·D] the decode query.</summary>
    public required float[] Query { get; init; }

    /// <summary>[B, 1, Hkv·D] the new key.</summary>
    public required float[] NewKey { get; init; }

    /// <summary>[B, 1, Hkv·D] the new value.</summary>
    public required float[] NewValue { get; init; }

    /// <summary>
    /// The key cache: per (b, kv head), in that order, T rows of D, the last row free for the new key
    /// (an array per head: B·Hkv·T·D elements may exceed what one array holds).
    /// </summary>
    public required float[][] Keys { get; init; }

    /// <summary>The value cache, laid out as <see cref="Keys"/>.</summary>
    public required float[][] Values { get; init; }

    /// <summary>Needle positions per (b, kv head); empty for a captured cache.</summary>
    public required int[][] Needles { get; init; }

    /// <summary>Hq.</summary>
    public required int Heads { get; init; }

    /// <summary>Hkv.</summary>
    public required int KvHeads { get; init; }

    /// <summary>D, the key and value head size.</summary>
    public required int HeadDim { get; init; }

    /// <summary>T, the cache length after the step.</summary>
    public required int Context { get; init; }

    /// <summary>Whether the cache has planted needles to look for.</summary>
    public bool HasNeedles => Needles.Any(n => n.Length > 0);

    /// <summary>
    /// Draws a synthetic cache shaped like real keys: per KV head, keys and queries are drawn in a
    /// random orthonormal basis with decaying variances (real keys have low effective rank), and a
    /// few needle keys at random middle positions point along the group's queries so that they
    /// dominate its attention. Values are uniform in [-1, 1).
    /// </summary>
    /// <param name="batch">B.</param>
    /// <param name="context">T, the cache length after the step.</param>
    /// <param name="heads">Hq.</param>
    /// <param name="kvHeads">Hkv.</param>
    /// <param name="headDim">D.</param>
    /// <param name="needles">Needles per (b, kv head).</param>
    /// <param name="seed">Random seed.</param>
    public static BenchCache Synthetic(int batch, int context, int heads, int kvHeads, int headDim, int needles, int seed)
    {
        int group = heads / kvHeads, d = headDim;
        var past = context - 1;
        if ((long)context * d > Array.MaxLength)
        {
            throw new ArgumentOutOfRangeException(nameof(context), $"a cache of {context} rows of {d} exceeds one array per head");
        }
        var query = new float[batch * heads * d];
        var newKey = new float[batch * kvHeads * d];
        var newValue = new float[batch * kvHeads * d];
        var keys = new float[batch * kvHeads][];
        var values = new float[batch * kvHeads][];
        var needlePositions = new int[batch * kvHeads][];
        // Variances decay so that about 60% of the dimensions hold 90% of the energy.
        var spread = Enumerable.Range(0, d).Select(i => MathF.Exp(-i / (0.35f * d))).ToArray();
        // Each (sequence, KV head) draws from a stream of its own: heads fill in parallel, and the
        // inputs do not depend on the number of threads.
        Parallel.For(0, batch * kvHeads, bg =>
        {
            var random = new Random(unchecked(seed * 1_000_003 + bg));
            var (b, g) = (bg / kvHeads, bg % kvHeads);
            var basis = RandomOrthonormal(d, random);
            var cache = keys[bg] = new float[context * d];
            var draw = new float[d];
            void Sample(Span<float> target)
            {
                for (var i = 0; i < d; i++)
                {
                    draw[i] = Gaussian(random) * spread[i];
                }
                target.Clear();
                for (var k = 0; k < d; k++)
                {
                    TensorPrimitives.MultiplyAdd(basis.AsSpan(k * d, d), draw[k], target, target);
                }
            }
            for (var t = 0; t < past; t++)
            {
                Sample(cache.AsSpan(t * d, d));
            }
            Sample(newKey.AsSpan(bg * d, d));
            var direction = new float[d];
            for (var member = 0; member < group; member++)
            {
                var q = query.AsSpan((b * heads + g * group + member) * d, d);
                Sample(q);
                TensorPrimitives.Add(direction, q, direction);
            }
            // Needles lie along the group's summed query u, scaled so that each head scores them
            // about 15 above the typical key (scale = 1/√D): e^15 outweighs a million ordinary keys.
            var norm = MathF.Sqrt(direction.Sum(x => x * x));
            float alignment = 0;
            for (var member = 0; member < group; member++)
            {
                alignment += TensorPrimitives.Dot(query.AsSpan((b * heads + g * group + member) * d, d), direction) / norm / group;
            }
            var length = 15f * MathF.Sqrt(d) / MathF.Max(alignment, 1e-3f);
            var positions = new HashSet<int>();
            while (positions.Count < Math.Min(needles, Math.Max(0, past - 200)))
            {
                positions.Add(100 + random.Next(past - 200));
            }
            needlePositions[bg] = positions.Order().ToArray();
            foreach (var p in positions)
            {
                TensorPrimitives.Multiply(direction, length / norm, cache.AsSpan(p * d, d));
            }
            var valueRows = values[bg] = new float[context * d];
            for (var i = 0; i < past * d; i++)
            {
                valueRows[i] = (float)(random.NextDouble() * 2 - 1);
            }
            for (var i = 0; i < d; i++)
            {
                newValue[bg * d + i] = (float)(random.NextDouble() * 2 - 1);
            }
        });
        return new BenchCache { Heads = heads, KvHeads = kvHeads, HeadDim = d, Context = context, Query = query, NewKey = newKey, NewValue = newValue, Keys = keys, Values = values, Needles = needlePositions };
    }

    /// <summary>
    /// The decode step of the last token of a sequence saved by <c>ortsparse capture</c>: its query,
    /// key and value are the step's; the sequence's other tokens are the cache.
    /// </summary>
    /// <param name="capture">The capture file's data.</param>
    /// <param name="layer">The attention layer.</param>
    /// <exception cref="InvalidDataException">The layer is not in the file, or its tensors do not fit together.</exception>
    public static BenchCache FromCapture(CalibrationData capture, int layer)
    {
        CalibrationTensor Get(string name) => capture.TensorNames.Contains(name)
            ? capture.GetTensor(name)
            : throw new InvalidDataException($"{capture.SourcePath}: no captured layer {layer} (tensor '{name}' is missing; captured: " +
                                             $"{string.Join(", ", capture.TensorNames.Where(n => n.EndsWith(".capture.key", StringComparison.Ordinal)).Select(n => n.Split('.')[1]))})");
        var queries = Get(CalibrationNames.CapturedQueries(layer));
        var keys = Get(CalibrationNames.CapturedKeys(layer));
        var values = Get(CalibrationNames.CapturedValues(layer));
        if (queries.Shape.Count != 3 || keys.Shape.Count != 3 || values.Shape.Count != 3)
        {
            throw new InvalidDataException($"{capture.SourcePath}: layer {layer}'s captured tensors must be [heads, T, D]");
        }
        int heads = queries.Shape[0], context = queries.Shape[1], d = queries.Shape[2], kvHeads = keys.Shape[0];
        if (keys.Shape[1] != context || keys.Shape[2] != d || values.Shape[0] != kvHeads || values.Shape[1] != context || values.Shape[2] != d)
        {
            throw new InvalidDataException($"{capture.SourcePath}: layer {layer}: queries {queries}, keys {keys} and values {values} must share T and D " +
                                           "(bench attention needs the value head size equal to the key head size)");
        }
        if (heads % kvHeads != 0 || context < 2)
        {
            throw new InvalidDataException($"{capture.SourcePath}: layer {layer}: {heads} query heads over {kvHeads} KV heads and {context} tokens " +
                                           "(query heads must be a multiple of KV heads, and a decode step needs at least 2 tokens)");
        }
        var q = queries.Values.Span;
        var k = keys.Values.Span;
        var v = values.Values.Span;
        var query = new float[heads * d];
        for (var h = 0; h < heads; h++)
        {
            q.Slice(((h * context) + context - 1) * d, d).CopyTo(query.AsSpan(h * d));
        }
        var newKey = new float[kvHeads * d];
        var newValue = new float[kvHeads * d];
        var cacheKeys = new float[kvHeads][];
        var cacheValues = new float[kvHeads][];
        for (var g = 0; g < kvHeads; g++)
        {
            var rows = g * context * d;
            var past = (context - 1) * d;
            cacheKeys[g] = new float[context * d];  // the last row stays free for the new key
            cacheValues[g] = new float[context * d];
            k.Slice(rows, past).CopyTo(cacheKeys[g]);
            v.Slice(rows, past).CopyTo(cacheValues[g]);
            k.Slice(rows + past, d).CopyTo(newKey.AsSpan(g * d));
            v.Slice(rows + past, d).CopyTo(newValue.AsSpan(g * d));
        }
        return new BenchCache
        {
            Heads = heads, KvHeads = kvHeads, HeadDim = d, Context = context, Query = query, NewKey = newKey, NewValue = newValue, Keys = cacheKeys, Values = cacheValues,
            Needles = Enumerable.Range(0, kvHeads).Select(_ => Array.Empty<int>()).ToArray(),
        };
    }

    private static float Gaussian(Random random) =>
        (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));

    /// <summary>Rows of a random orthonormal matrix (Gram–Schmidt on Gaussian rows).</summary>
    private static float[] RandomOrthonormal(int d, Random random)
    {
        var m = new double[d * d];
        for (var r = 0; r < d; r++)
        {
            for (var c = 0; c < d; c++)
            {
                m[r * d + c] = Gaussian(random);
            }
            for (var p = 0; p < r; p++)
            {
                double dot = 0;
                for (var c = 0; c < d; c++)
                {
                    dot += m[r * d + c] * m[p * d + c];
                }
                for (var c = 0; c < d; c++)
                {
                    m[r * d + c] -= dot * m[p * d + c];
                }
            }
            var norm = Math.Sqrt(Enumerable.Range(0, d).Sum(c => m[r * d + c] * m[r * d + c]));
            for (var c = 0; c < d; c++)
            {
                m[r * d + c] /= norm;
            }
        }
        return m.Select(x => (float)x).ToArray();
    }
}
