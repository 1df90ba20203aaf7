namespace OrtSparse.Cli.Plot;

/// <summary>
/// Chooses an axis's ticks: candidate sets from dense to sparse, the first one whose labels have room
/// (as the caller judges) wins.
/// </summary>
internal static class AxisTicks
{
    private static readonly int[] NiceMantissas = [1, 2, 5];

    /// <summary>The ticks of <paramref name="axis"/> over <paramref name="range"/>.</summary>
    /// <param name="axis">The axis.</param>
    /// <param name="range">The values shown.</param>
    /// <param name="values">The data on the axis (for <see cref="TickSpacing.Auto"/>).</param>
    /// <param name="fits">Whether a set of ticks leaves room between its labels.</param>
    public static IReadOnlyList<AxisTick> Choose(PlotAxis axis, AxisRange range, IEnumerable<double> values, Func<IReadOnlyList<AxisTick>, bool> fits)
    {
        IReadOnlyList<AxisTick>? last = null;
        foreach (var candidate in Candidates(axis, range, values))
        {
            if (fits(candidate))
            {
                return candidate;
            }
            last = candidate;
        }
        return last ?? throw new InvalidOperationException($"no ticks for the range [{range.Min}, {range.Max}]");
    }

    private static IEnumerable<IReadOnlyList<AxisTick>> Candidates(PlotAxis axis, AxisRange range, IEnumerable<double> values)
    {
        if (axis.Scale == AxisScale.Linear)
        {
            return Linear(range, axis.TickFormatter ?? TickFormats.Compact);
        }
        var powersOfTwo = axis.Ticks switch
        {
            TickSpacing.PowersOfTwo => true,
            TickSpacing.Auto => values.Distinct().Count() >= 2 && values.All(IsPowerOfTwo),
            _ => false,
        };
        if (powersOfTwo && PowersOfTwo(range, axis.TickFormatter ?? TickFormats.Binary).ToList() is { Count: > 0 } binary)
        {
            return binary;
        }
        var format = axis.TickFormatter ?? TickFormats.Compact;
        var levels = Decades(range, format).ToList();
        var decades = levels.Where(ticks => ticks.Count(t => t.Label is not null) >= 2).ToList();
        // Within less than a factor of ~2.5, 1, 2 and 5 × 10^k give fewer than two labels: linear steps label it better.
        return levels[0].Count(t => t.Label is not null) >= 2 ? decades : Linear(range, format).Concat(decades);
    }

    /// <summary>Multiples of 1, 2 or 5 × 10^k, finer steps first, while at least two fall in the range.</summary>
    private static IEnumerable<IReadOnlyList<AxisTick>> Linear(AxisRange range, Func<double, string> format)
    {
        var exponent = (int)Math.Floor(Math.Log10(range.Max - range.Min)) - 2;
        for (; ; exponent++)
        {
            foreach (var mantissa in NiceMantissas)
            {
                var step = Scaled(mantissa, exponent);
                var first = (long)Math.Ceiling((range.Min / step) - 1e-9);
                var last = (long)Math.Floor((range.Max / step) + 1e-9);
                if (last - first + 1 > 50)
                {
                    continue;
                }
                if (last - first + 1 < 2)
                {
                    yield break;
                }
                var ticks = new List<AxisTick>();
                for (var k = first; k <= last; k++)
                {
                    var value = Scaled(k * mantissa, exponent);
                    ticks.Add(new AxisTick(value, format(value)));
                }
                yield return ticks;
            }
        }
    }

    /// <summary>
    /// Log-axis ticks at 1, 2 and 5 × 10^k, then at each power of ten, then every 2nd, 3rd, 5th … one;
    /// the other multiples (or powers) within the range become unlabelled minor lines.
    /// </summary>
    private static IEnumerable<IReadOnlyList<AxisTick>> Decades(AxisRange range, Func<double, string> format)
    {
        var low = (int)Math.Floor(Math.Log10(range.Min));
        var high = (int)Math.Ceiling(Math.Log10(range.Max));
        var minorMultiples = high - low <= 8;
        yield return LogTicks(low, high, 1, mantissa => mantissa is 1 or 2 or 5, minorMultiples, range, format);
        foreach (var stride in Strides(high - low))
        {
            yield return LogTicks(low, high, stride, mantissa => mantissa == 1, minorMultiples && stride == 1, range, format);
        }
    }

    private static List<AxisTick> LogTicks(int low, int high, int stride, Func<int, bool> labelled, bool minorMultiples,
                                           AxisRange range, Func<double, string> format)
    {
        var ticks = new List<AxisTick>();
        for (var exponent = low; exponent <= high; exponent++)
        {
            for (var mantissa = 1; mantissa <= 9; mantissa++)
            {
                var value = Scaled(mantissa, exponent);
                if (!InRange(value, range))
                {
                    continue;
                }
                if (labelled(mantissa) && exponent % stride == 0)
                {
                    ticks.Add(new AxisTick(value, format(value)));
                }
                else if (minorMultiples || mantissa == 1)
                {
                    ticks.Add(new AxisTick(value, null));
                }
            }
        }
        return ticks;
    }

    /// <summary>Log-axis ticks at every power of two in range, then every 2nd, 3rd, … one, while at least two are labelled.</summary>
    private static IEnumerable<IReadOnlyList<AxisTick>> PowersOfTwo(AxisRange range, Func<double, string> format)
    {
        var low = (int)Math.Ceiling(Math.Log2(range.Min) - 1e-9);
        var high = (int)Math.Floor(Math.Log2(range.Max) + 1e-9);
        if (high - low < 1)
        {
            yield break;
        }
        foreach (var stride in Strides(high - low))
        {
            var ticks = Enumerable.Range(low, high - low + 1)
                .Select(k => (Value: Math.ScaleB(1, k), Labelled: k % stride == 0))
                .Select(t => new AxisTick(t.Value, t.Labelled ? format(t.Value) : null)).ToList();
            if (ticks.Count(t => t.Label is not null) < 2)
            {
                yield break;
            }
            yield return ticks;
        }
    }

    /// <summary>1, 2, 3, 5, 10, 20, 30, 50 … up to <paramref name="span"/>.</summary>
    private static IEnumerable<int> Strides(int span)
    {
        for (var scale = 1; scale <= Math.Max(span, 1); scale *= 10)
        {
            foreach (var stride in new[] { 1, 2, 3, 5 })
            {
                if (stride * scale <= Math.Max(span, 1))
                {
                    yield return stride * scale;
                }
            }
        }
    }

    private static bool InRange(double value, AxisRange range) =>
        value >= range.Min * (1 - 1e-12) && value <= range.Max * (1 + 1e-12);

    /// <summary>mantissa × 10^exponent, as exact as a double gets (dividing by an exact power of ten for negative exponents).</summary>
    private static double Scaled(long mantissa, int exponent) =>
        exponent >= 0 ? mantissa * Math.Pow(10, exponent) : mantissa / Math.Pow(10, -exponent);

    private static bool IsPowerOfTwo(double value) =>
        value > 0 && double.IsFinite(value) && Math.ScaleB(1, (int)Math.Round(Math.Log2(value))) == value;
}
