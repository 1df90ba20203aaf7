namespace OrtSparse.Calibration;

/// <summary>
/// Standard normal numbers from a seeded <see cref="Random"/> by the Box–Muller transform: two uniforms
/// give two independent normals, the second kept for the next call. The sequence depends only on the seed.
/// </summary>
internal sealed class GaussianSampler(Random uniform)
{
    private double? _spare;

    public double Next()
    {
        if (_spare is { } spare)
        {
            _spare = null;
            return spare;
        }
        // 1 - NextDouble() lies in (0, 1], so the logarithm is finite.
        var radius = Math.Sqrt(-2.0 * Math.Log(1.0 - uniform.NextDouble()));
        var angle = 2.0 * Math.PI * uniform.NextDouble();
        _spare = radius * Math.Sin(angle);
        return radius * Math.Cos(angle);
    }
}
