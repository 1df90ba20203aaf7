namespace OrtSparse.Cli.Bench.Generate;

/// <summary>
/// Seeded random weights, fast enough for billions: each chunk of a tensor has its own SplitMix64
/// stream, derived from the seed, the tensor's index and the chunk's, so chunks fill in parallel
/// and the values depend only on those three, never on the thread count.
/// </summary>
internal static class RandomWeights
{
    /// <summary>Elements per independently seeded chunk.</summary>
    public const int Chunk = 1 << 16;

    /// <summary>
    /// <paramref name="count"/> values uniform in [−√3·std, √3·std): the variance of N(0, std²),
    /// bounded, so no outlier weight can overflow float16.
    /// </summary>
    public static float[] Uniform(long count, double std, int seed, int tensorIndex)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, Array.MaxLength);
        var values = new float[count];
        var bound = std * Math.Sqrt(3);
        Parallel.For(0, (count + Chunk - 1) / Chunk, chunk =>
        {
            var state = Mix(Mix(Mix((ulong)(uint)seed) ^ (ulong)(uint)tensorIndex) ^ (ulong)chunk);
            var end = Math.Min(count, (chunk + 1) * Chunk);
            for (var i = chunk * Chunk; i < end; i++)
            {
                state += Gamma;
                // The top 53 bits of the mixed state: a uniform double in [0, 1).
                var unit = (Mix(state) >> 11) * (1.0 / (1UL << 53));
                values[i] = (float)((2 * unit - 1) * bound);
            }
        });
        return values;
    }

    private const ulong Gamma = 0x9E3779B97F4A7C15UL;

    /// <summary>SplitMix64's output function (Steele, Lea and Flood 2014).</summary>
    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
