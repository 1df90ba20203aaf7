namespace OrtSparse.Calibration.Tests;

public sealed class HashProjectionsTests
{
    [Fact]
    public void ShapeIsHeadsRoundsDimensionHalfBuckets()
    {
        var projections = HashProjections.Create(kvHeads: 2, rounds: 3, headDim: 64, buckets: 16, seed: 1);

        Assert.Equal([2, 3, 64, 8], projections.Shape);
        Assert.Equal(2 * 3 * 64 * 8, projections.Values.Length);
    }

    [Fact]
    public void ASeedGivesOneTensor()
    {
        var first = HashProjections.Create(2, 2, 32, 8, seed: 42).Values.ToArray();

        Assert.Equal(first, HashProjections.Create(2, 2, 32, 8, seed: 42).Values.ToArray());
        Assert.NotEqual(first, HashProjections.Create(2, 2, 32, 8, seed: 43).Values.ToArray());
        // A larger tensor starts with the same draws: entries are filled in row-major order from one stream.
        Assert.Equal(first, HashProjections.Create(4, 2, 32, 8, seed: 42).Values[..first.Length].ToArray());
    }

    [Fact]
    public void EntriesAreStandardNormal()
    {
        var values = HashProjections.Create(4, 4, 128, 32, seed: 7).Values.ToArray();   // 32,768 entries
        var mean = values.Average(v => (double)v);
        var variance = values.Average(v => (v - mean) * (v - mean));
        var skew = values.Average(v => Math.Pow(v - mean, 3));
        var kurtosis = values.Average(v => Math.Pow(v - mean, 4)) / (variance * variance);

        Assert.InRange(mean, -0.03, 0.03);
        Assert.InRange(variance, 0.97, 1.03);
        Assert.InRange(skew, -0.05, 0.05);
        Assert.InRange(kurtosis, 2.9, 3.1);
        Assert.InRange(values.Count(v => Math.Abs(v) < 1.959964) / (double)values.Length, 0.945, 0.955);
        // Neighbouring entries (the two normals of one Box–Muller pair) are uncorrelated.
        var lag = Enumerable.Range(0, values.Length - 1).Average(i => (values[i] - mean) * (values[i + 1] - mean)) / variance;
        Assert.InRange(lag, -0.03, 0.03);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(-2)]
    public void BucketsMustBeEvenAndAtLeastTwo(int buckets)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => HashProjections.Create(1, 1, 8, buckets, seed: 0));
        Assert.Contains("even and at least 2", error.Message);
        Assert.Equal("buckets", error.ParamName);
    }

    [Fact]
    public void CountsMustBePositive()
    {
        Assert.Equal("kvHeads", Assert.Throws<ArgumentOutOfRangeException>(() => HashProjections.Create(0, 1, 8, 2, 0)).ParamName);
        Assert.Equal("rounds", Assert.Throws<ArgumentOutOfRangeException>(() => HashProjections.Create(1, 0, 8, 2, 0)).ParamName);
        Assert.Equal("headDim", Assert.Throws<ArgumentOutOfRangeException>(() => HashProjections.Create(1, 1, -8, 2, 0)).ParamName);
    }
}
