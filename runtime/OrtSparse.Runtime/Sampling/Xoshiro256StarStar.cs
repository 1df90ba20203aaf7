namespace OrtSparse.Runtime.Sampling;

/// <summary>
/// xoshiro256** (Blackman and Vigna, "Scrambled linear pseudorandom number generators", 2021): a 256-bit-state
/// generator of 64-bit words, fast and of good statistical quality, not cryptographic. Unlike
/// <see cref="Random"/>, whose algorithm .NET may change, its output is fixed by the algorithm alone, so seeded
/// sampling gives the same tokens everywhere. Not thread-safe.
/// </summary>
public sealed class Xoshiro256StarStar
{
    private ulong _s0, _s1, _s2, _s3;

    /// <summary>
    /// Seeds the state with the first four outputs of SplitMix64 started at <paramref name="seed"/>, the seeding
    /// the algorithm's authors recommend (it never gives the all-zero state).
    /// </summary>
    public Xoshiro256StarStar(long seed)
    {
        var splitMix = unchecked((ulong)seed);
        _s0 = SplitMix64(ref splitMix);
        _s1 = SplitMix64(ref splitMix);
        _s2 = SplitMix64(ref splitMix);
        _s3 = SplitMix64(ref splitMix);
    }

    private Xoshiro256StarStar(ulong s0, ulong s1, ulong s2, ulong s3) => (_s0, _s1, _s2, _s3) = (s0, s1, s2, s3);

    /// <summary>A generator in the given raw state, as the reference C code's <c>s[0..3]</c>; not all zero.</summary>
    public static Xoshiro256StarStar FromState(ulong s0, ulong s1, ulong s2, ulong s3)
    {
        if ((s0 | s1 | s2 | s3) == 0)
        {
            throw new ArgumentException("The all-zero state is a fixed point of xoshiro256** and gives only zeros.");
        }
        return new Xoshiro256StarStar(s0, s1, s2, s3);
    }

    /// <summary>The next 64-bit output.</summary>
    public ulong NextUInt64()
    {
        var result = ulong.RotateLeft(_s1 * 5, 7) * 9;
        var t = _s1 << 17;
        _s2 ^= _s0;
        _s3 ^= _s1;
        _s1 ^= _s2;
        _s0 ^= _s3;
        _s2 ^= t;
        _s3 = ulong.RotateLeft(_s3, 45);
        return result;
    }

    /// <summary>A double uniform in [0, 1): the top 53 bits of <see cref="NextUInt64"/> times 2⁻⁵³.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    // SplitMix64 (Steele, Lea and Flood, 2014): a Weyl sequence through a 64-bit mixing function.
    private static ulong SplitMix64(ref ulong state)
    {
        state += 0x9E3779B97F4A7C15UL;
        var z = state;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
