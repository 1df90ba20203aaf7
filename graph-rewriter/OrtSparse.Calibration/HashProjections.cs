namespace OrtSparse.Calibration;

/// <summary>
/// Random projections for <c>hash</c>: in round <c>r</c>, <c>bucket(x) = argmax([x·W_r, −x·W_r])</c>, so
/// <c>NB</c> buckets need <c>NB/2</c> projection columns. Entries are independent standard normals, which
/// makes the buckets a random rotation's angular LSH (Reformer).
/// </summary>
public static class HashProjections
{
    /// <summary>
    /// [kvHeads, rounds, headDim, buckets/2] standard normal entries, drawn in row-major order from
    /// <c>new Random(seed)</c> by Box–Muller: the same arguments give the same tensor.
    /// </summary>
    /// <param name="kvHeads">Hkv, at least 1.</param>
    /// <param name="rounds">R, at least 1.</param>
    /// <param name="headDim">D, at least 1.</param>
    /// <param name="buckets">NB, even and at least 2.</param>
    /// <param name="seed">The generator's seed.</param>
    public static CalibrationTensor Create(int kvHeads, int rounds, int headDim, int buckets, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(kvHeads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rounds);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(headDim);
        if (buckets < 2 || buckets % 2 != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(buckets), buckets, "the bucket count must be even and at least 2 (each projection column gives two buckets, ±)");
        }
        var count = (long)kvHeads * rounds * headDim * (buckets / 2);
        if (count > Array.MaxLength)
        {
            throw new ArgumentOutOfRangeException(nameof(buckets), $"[{kvHeads},{rounds},{headDim},{buckets / 2}] holds {count} elements, more than an array can");
        }
        var values = new float[count];
        var normal = new GaussianSampler(new Random(seed));
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = (float)normal.Next();
        }
        return new CalibrationTensor(values, kvHeads, rounds, headDim, buckets / 2);
    }
}
