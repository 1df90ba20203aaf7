using System.Globalization;
using OrtSparse.Runtime.Sampling;

namespace OrtSparse.Runtime.Tests;

/// <summary>
/// The straightforward route to the distribution Hugging Face's default warpers sample from, in double: penalise,
/// scale, sort by probability (ties: lower id first), cut, renormalise after each filter. Independent of
/// <see cref="TokenSampler"/>'s heap, pruning and weight tricks.
/// </summary>
internal static class ReferenceSampling
{
    public static double[] Distribution(float[] logits, int[] previousTokens, SamplingOptions options)
    {
        var scores = logits.Select(logit => (double)logit).ToArray();
        foreach (var token in previousTokens.Distinct())
        {
            scores[token] = scores[token] > 0 ? scores[token] / options.RepetitionPenalty : scores[token] * options.RepetitionPenalty;
        }
        if (options.Temperature == 0)
        {
            var greedy = new double[scores.Length];
            greedy[Array.IndexOf(scores, scores.Max())] = 1;
            return greedy;
        }
        scores = scores.Select(score => score / options.Temperature).ToArray();
        var alive = Enumerable.Repeat(true, scores.Length).ToArray();
        var probabilities = Softmax(scores, alive);
        var ranking = Enumerable.Range(0, scores.Length).OrderByDescending(token => probabilities[token]).ThenBy(token => token).ToArray();
        if (options.TopK > 0)
        {
            foreach (var token in ranking.Skip(options.TopK))
            {
                alive[token] = false;
            }
        }
        if (options.TopP < 1)
        {
            probabilities = Softmax(scores, alive);
            var cumulative = 0.0;
            foreach (var token in ranking.Where(token => alive[token]))
            {
                if (cumulative >= options.TopP)
                {
                    alive[token] = false;
                }
                cumulative += probabilities[token];
            }
        }
        if (options.MinP > 0)
        {
            probabilities = Softmax(scores, alive);
            var threshold = options.MinP * probabilities.Max();
            for (var token = 0; token < scores.Length; token++)
            {
                alive[token] &= probabilities[token] >= threshold;
            }
        }
        return Softmax(scores, alive);
    }

    /// <summary>Inverse CDF in ascending id order: the documented draw of <see cref="TokenSampler"/>.</summary>
    public static int Draw(double[] distribution, double u)
    {
        var cumulative = 0.0;
        for (var token = 0; token < distribution.Length; token++)
        {
            cumulative += distribution[token];
            if (distribution[token] > 0 && cumulative > u)
            {
                return token;
            }
        }
        return Array.FindLastIndex(distribution, p => p > 0);
    }

    private static double[] Softmax(double[] scores, bool[] alive)
    {
        var max = scores.Where((_, token) => alive[token]).Max();
        var exp = scores.Select((score, token) => alive[token] ? Math.Exp(score - max) : 0).ToArray();
        var sum = exp.Sum();
        return exp.Select(e => e / sum).ToArray();
    }
}

public class SamplingTests
{
    private const int Draws = 20_000;

    // 12 logits with distinct values, a spread of about 4 nats.
    private static readonly float[] SmallLogits = [1.2f, -0.4f, 2.1f, 0.3f, -1.9f, 1.7f, 0.9f, -0.8f, 0.05f, 1.45f, -1.2f, 0.6f];
    private static readonly int[] SmallHistory = [2, 5, 5, 7];

    private static SamplingOptions Options(double temperature, int topK, double topP, double minP, double penalty, long seed = 11) =>
        new() { Temperature = temperature, TopK = topK, TopP = topP, MinP = minP, RepetitionPenalty = penalty, Seed = seed };

    [Theory]
    [InlineData(1.0, 0, 1.0, 0.0, 1.0)]
    [InlineData(0.5, 0, 1.0, 0.0, 1.0)]
    [InlineData(2.0, 0, 1.0, 0.0, 1.0)]
    [InlineData(1.0, 3, 1.0, 0.0, 1.0)]
    [InlineData(1.0, 12, 1.0, 0.0, 1.0)]
    [InlineData(1.0, 0, 0.6, 0.0, 1.0)]
    [InlineData(1.0, 0, 0.9, 0.0, 1.0)]
    [InlineData(1.0, 0, 1.0, 0.3, 1.0)]
    [InlineData(1.0, 0, 1.0, 0.0, 1.8)]
    [InlineData(0.5, 0, 1.0, 0.0, 0.7)]
    [InlineData(0.7, 6, 0.8, 0.0, 1.0)]
    [InlineData(1.3, 8, 0.95, 0.1, 1.3)]
    [InlineData(0.9, 5, 0.99, 0.5, 1.0)]
    [InlineData(1.0, 0, 0.7, 0.25, 1.2)]
    public void DrawsFollowTheReferenceDistribution(double temperature, int topK, double topP, double minP, double penalty)
    {
        var options = Options(temperature, topK, topP, minP, penalty);
        var expected = ReferenceSampling.Distribution(SmallLogits, SmallHistory, options);
        var sampler = new TokenSampler(options);
        var counts = new int[SmallLogits.Length];
        for (var draw = 0; draw < Draws; draw++)
        {
            counts[sampler.Sample(SmallLogits, SmallHistory)]++;
        }

        for (var token = 0; token < counts.Length; token++)
        {
            if (expected[token] == 0)
            {
                Assert.True(counts[token] == 0, $"token {token} is outside the reference support but was drawn {counts[token]} times");
            }
        }
        AssertChiSquareFits(counts, expected);
    }

    // Tokens expected fewer than 5 times share one bin, as the chi-square approximation needs.
    private static void AssertChiSquareFits(int[] counts, double[] probabilities)
    {
        var bins = new List<(double Expected, int Observed)>();
        var (restExpected, restObserved) = (0.0, 0);
        for (var token = 0; token < counts.Length; token++)
        {
            var expected = probabilities[token] * Draws;
            if (expected >= 5)
            {
                bins.Add((expected, counts[token]));
            }
            else if (expected > 0)
            {
                restExpected += expected;
                restObserved += counts[token];
            }
        }
        if (restExpected > 0)
        {
            bins.Add((restExpected, restObserved));
        }
        var statistic = bins.Sum(bin => (bin.Observed - bin.Expected) * (bin.Observed - bin.Expected) / bin.Expected);
        var degrees = bins.Count - 1;
        // Wilson–Hilferty quantile at z = 5 (upper tail about 3e-7).
        var bound = degrees == 0 ? 0 : degrees * Math.Pow(1 - 2.0 / (9 * degrees) + 5 * Math.Sqrt(2.0 / (9 * degrees)), 3);
        Assert.True(statistic <= bound + 1e-9,
            $"chi-square {statistic:F1} > {bound:F1} ({degrees} degrees of freedom); observed {string.Join(' ', counts)}");
    }

    public static TheoryData<string, double, int, double, double, double> ReplayCases() => new()
    {
        { "normal5000", 1.0, 0, 1.0, 0.0, 1.0 },
        { "normal5000", 0.8, 40, 1.0, 0.0, 1.0 },
        { "normal5000", 1.0, 0, 0.9, 0.0, 1.0 },
        { "normal5000", 1.3, 200, 0.95, 0.0, 1.0 },
        { "normal5000", 1.0, 0, 1.0, 0.05, 1.0 },
        { "normal5000", 1.0, 0, 0.5, 0.2, 1.0 },
        { "normal5000", 0.7, 50, 0.9, 0.05, 1.3 },
        { "normal5000", 2.5, 0, 0.97, 0.00001, 1.1 },
        { "normal5000", 1.0, 4999, 0.999, 0.0, 1.0 },
        // One token of logit 0 and 20,000 of logit -10: the nucleus reaches far into tokens below the pruning weight.
        { "flatTail", 1.0, 0, 0.9, 0.0, 1.0 },
        { "flatTail", 1.0, 0, 0.9, 0.00004, 1.0 },
        { "flatTail", 1.0, 15000, 0.8, 0.0, 1.0 },
        { "small", 1.0, 0, 0.6, 0.0, 1.0 },
        { "small", 0.3, 4, 0.9, 0.1, 2.0 },
    };

    [Theory]
    [MemberData(nameof(ReplayCases))]
    public void EachDrawIsTheReferenceInverseCdfOfTheGeneratorsNumber(string logitsName, double temperature, int topK, double topP, double minP, double penalty)
    {
        var (logits, history) = logitsName switch
        {
            "normal5000" => (NormalLogits(5000, 3.0, seed: 1), new[] { 17, 4000, 4000, 123, 2999 }),
            "flatTail" => (FlatTailLogits(), new[] { 9 }),
            _ => (SmallLogits, SmallHistory),
        };
        var options = Options(temperature, topK, topP, minP, penalty, seed: 2024);
        var expected = ReferenceSampling.Distribution(logits, history, options);
        var sampler = new TokenSampler(options);
        var generator = new Xoshiro256StarStar(2024);
        for (var draw = 0; draw < 300; draw++)
        {
            var token = sampler.Sample(logits, history);
            Assert.Equal(ReferenceSampling.Draw(expected, generator.NextDouble()), token);
        }
    }

    private static float[] NormalLogits(int vocabulary, double sigma, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, vocabulary)
            .Select(_ => (float)(sigma * Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble())))
            .ToArray();
    }

    private static float[] FlatTailLogits()
    {
        var logits = Enumerable.Repeat(-10f, 20_001).ToArray();
        logits[7] = 0;
        return logits;
    }

    [Theory]
    [InlineData(new float[] { 0.5f, 2f, -1f, 2f }, 1)]
    [InlineData(new float[] { 3f, 3f, 3f }, 0)]
    [InlineData(new float[] { -5f, -4f, -4f, -6f }, 1)]
    [InlineData(new float[] { 7f }, 0)]
    [InlineData(new float[] { 0f, 0f, 1e-7f, 0f }, 2)]
    public void GreedyIsTheArgmaxWithTiesToTheLowestId(float[] logits, int expected)
    {
        Assert.Equal(expected, Array.IndexOf(logits, logits.Max()));
        var configurations = new[]
        {
            SamplingOptions.Greedy,
            SamplingOptions.Greedy with { TopK = 2, TopP = 0.1, MinP = 0.5 },
            new SamplingOptions { TopK = 1, Seed = 3 },
            new SamplingOptions { TopK = 1, Temperature = 5, Seed = 4 },
        };
        foreach (var options in configurations)
        {
            var sampler = new TokenSampler(options);
            for (var step = 0; step < 20; step++)
            {
                Assert.Equal(expected, sampler.Sample(logits, []));
            }
        }
    }

    [Fact]
    public void TopKOfOneIsGreedyOnRandomLogits()
    {
        var greedy = new TokenSampler(SamplingOptions.Greedy);
        var topOne = new TokenSampler(new SamplingOptions { TopK = 1, Temperature = 1.5, Seed = 8 });
        for (var seed = 0; seed < 50; seed++)
        {
            var logits = NormalLogits(300, 2.0, seed);
            Assert.Equal(Array.IndexOf(logits, logits.Max()), greedy.Sample(logits, []));
            Assert.Equal(Array.IndexOf(logits, logits.Max()), topOne.Sample(logits, []));
        }
    }

    [Theory]
    // Positive logits are divided: 3 / 1.5 = 2 < 2.5.
    [InlineData(new float[] { 3f, 2.5f }, new[] { 0 }, 1.5, 1)]
    // Negative logits are multiplied: -1 * 1.5 = -1.5 < -1.2 (dividing would give -0.67 and keep token 0).
    [InlineData(new float[] { -1f, -1.2f }, new[] { 0 }, 1.5, 1)]
    // A penalty below 1 favours repeats: -1.2 * 0.5 = -0.6 > -1.
    [InlineData(new float[] { -1f, -1.2f }, new[] { 1 }, 0.5, 1)]
    [InlineData(new float[] { 1f, 1.2f }, new[] { 0 }, 0.5, 0)]
    // Each token once, however often it occurs: 4 / 1.2 = 3.33 > 3 (three times would give 2.31).
    [InlineData(new float[] { 4f, 3f }, new[] { 0, 0, 0 }, 1.2, 0)]
    // A zero logit stays zero.
    [InlineData(new float[] { 0f, -0.1f }, new[] { 0 }, 10.0, 0)]
    // Only the tokens of the sequence are penalised: 5 / 3 = 1.67 < 2.
    [InlineData(new float[] { 2f, 1.9f, 5f }, new[] { 2 }, 3.0, 0)]
    [InlineData(new float[] { 2f, 1.9f }, new int[0], 5.0, 0)]
    public void RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits(float[] logits, int[] history, double penalty, int expected)
    {
        var sampler = new TokenSampler(SamplingOptions.Greedy with { RepetitionPenalty = penalty });
        Assert.Equal(expected, sampler.Sample(logits, history));
        var reference = ReferenceSampling.Distribution(logits, history, SamplingOptions.Greedy with { RepetitionPenalty = penalty });
        Assert.Equal(1.0, reference[expected]);
    }

    [Theory]
    // Equal logits: every token has probability 1/n exactly, so the mass reaches p at an exact tie.
    [InlineData(4, 0.5, 2)]
    [InlineData(4, 0.25, 1)]
    [InlineData(4, 0.75, 3)]
    [InlineData(4, 0.01, 1)]
    [InlineData(8, 0.5, 4)]
    [InlineData(8, 0.5000001, 5)]
    [InlineData(8, 0.4999999, 4)]
    [InlineData(8, 0.875, 7)]
    [InlineData(10, 0.3, 3)]
    public void TopPAtAnExactMassTieKeepsTheSmallestSetOfLowestIds(int vocabulary, double topP, int kept)
    {
        var logits = Enumerable.Repeat(0.25f, vocabulary).ToArray();
        var drawn = DrawnTokens(logits, new SamplingOptions { TopP = topP, Seed = 5 }, draws: 3000);
        Assert.Equal(Enumerable.Range(0, kept), drawn);
    }

    [Fact]
    public void TopPMeasuresMassWithinTheTopK()
    {
        // After top-2: p(0) = e/(e+1) = 0.73 ≥ 0.7, so only token 0. Over all 22 tokens p(0) is only 0.25.
        float[] logits = [2, 1, .. Enumerable.Repeat(0f, 20)];
        Assert.Equal(new[] { 0 }, DrawnTokens(logits, new SamplingOptions { TopK = 2, TopP = 0.7, Seed = 6 }, draws: 2000));
        Assert.Equal(Enumerable.Range(0, 2), DrawnTokens(logits, new SamplingOptions { TopK = 2, TopP = 0.75, Seed = 6 }, draws: 2000));
    }

    [Theory]
    [InlineData(new float[] { 1f, 2f, 2f, 2f, 0f }, 2, new[] { 1, 2 })]
    [InlineData(new float[] { 1f, 2f, 2f, 2f, 0f }, 4, new[] { 0, 1, 2, 3 })]
    [InlineData(new float[] { 0f, 0f, 0f }, 1, new[] { 0 })]
    [InlineData(new float[] { -1f, 3f, 0.5f, 3f, 0.5f, 0.5f }, 3, new[] { 1, 2, 3 })]
    public void TopKTiesAtTheCutGoToTheLowestIds(float[] logits, int topK, int[] kept)
    {
        Assert.Equal(kept, DrawnTokens(logits, new SamplingOptions { TopK = topK, Seed = 9 }, draws: 3000));
    }

    [Theory]
    [InlineData(6)]
    [InlineData(7)]
    [InlineData(1000)]
    public void TopKOfAtLeastTheVocabularyKeepsEveryToken(int topK)
    {
        float[] logits = [0.1f, -0.3f, 0.7f, 0f, -1f, 0.4f];
        var unfiltered = new TokenSampler(new SamplingOptions { Seed = 12 });
        var sampler = new TokenSampler(new SamplingOptions { TopK = topK, Seed = 12 });
        var drawn = new SortedSet<int>();
        for (var draw = 0; draw < 3000; draw++)
        {
            var token = sampler.Sample(logits, []);
            Assert.Equal(unfiltered.Sample(logits, []), token);
            drawn.Add(token);
        }
        Assert.Equal(Enumerable.Range(0, logits.Length), drawn);
    }

    [Theory]
    // exp(-0.1) = 0.905 of the max: below 0.95, above 0.9.
    [InlineData(new float[] { 1f, 3f, 2.9f, 0f }, 0.95, new[] { 1 })]
    [InlineData(new float[] { 1f, 3f, 2.9f, 0f }, 0.9, new[] { 1, 2 })]
    [InlineData(new float[] { 3f, 1f, 3f }, 1.0, new[] { 0, 2 })]
    [InlineData(new float[] { 0f, 0f, 0f, 0f }, 1.0, new[] { 0, 1, 2, 3 })]
    [InlineData(new float[] { 5f, -5f, 4f }, 0.5, new[] { 0 })]
    public void MinPKeepsTokensAtLeastMinPTimesTheMaxProbability(float[] logits, double minP, int[] kept)
    {
        Assert.Equal(kept, DrawnTokens(logits, new SamplingOptions { MinP = minP, Seed = 10 }, draws: 3000));
    }

    private static SortedSet<int> DrawnTokens(float[] logits, SamplingOptions options, int draws)
    {
        var sampler = new TokenSampler(options);
        var drawn = new SortedSet<int>();
        for (var draw = 0; draw < draws; draw++)
        {
            drawn.Add(sampler.Sample(logits, []));
        }
        return drawn;
    }

    private static int[] Sequence(TokenSampler sampler, int length)
    {
        var logits = Enumerable.Range(0, 16).Select(token => (float)Math.Sin(token)).ToArray();
        return Enumerable.Range(0, length).Select(_ => sampler.Sample(logits, [])).ToArray();
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(42L)]
    [InlineData(-7L)]
    [InlineData(long.MaxValue)]
    public void TheSameSeedGivesTheSameTokensAndAnotherSeedOthers(long seed)
    {
        var options = new SamplingOptions { Temperature = 0.9, TopP = 0.95, Seed = seed };
        var first = Sequence(new TokenSampler(options), 200);
        Assert.Equal(first, Sequence(new TokenSampler(options), 200));
        Assert.NotEqual(first, Sequence(new TokenSampler(options with { Seed = seed + 1 }), 200));
    }

    [Fact]
    public void WithoutASeedEachSamplerDrawsOneAndReportsIt()
    {
        var first = new TokenSampler(new SamplingOptions());
        var second = new TokenSampler(new SamplingOptions());
        Assert.NotEqual(first.Seed, second.Seed);
        var replay = new TokenSampler(new SamplingOptions { Seed = first.Seed });
        Assert.Equal(first.Seed, replay.Seed);
        Assert.Equal(Sequence(first, 100), Sequence(replay, 100));
    }

    [Theory]
    [InlineData(3, float.NaN, "logits[3] is NaN")]
    [InlineData(0, float.PositiveInfinity, "logits[0] is Infinity")]
    [InlineData(5, float.NegativeInfinity, "logits[5] is -Infinity")]
    public void ANonFiniteLogitIsAnErrorNamingTheFirstBadIndex(int index, float bad, string message)
    {
        var logits = Enumerable.Range(0, 8).Select(token => token * 0.1f).ToArray();
        logits[index] = bad;
        logits[7] = float.NaN;
        foreach (var options in new[] { SamplingOptions.Greedy, new SamplingOptions { TopP = 0.9, Seed = 1 } })
        {
            var error = Assert.Throws<InvalidOperationException>(() => new TokenSampler(options).Sample(logits, []));
            Assert.StartsWith(message, error.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void EmptyLogitsAreAnError()
    {
        var error = Assert.Throws<ArgumentException>(() => new TokenSampler(new SamplingOptions { Seed = 1 }).Sample([], []));
        Assert.Equal("logits", error.ParamName);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(4)]
    public void APreviousTokenOutsideTheVocabularyIsAnError(int token)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() =>
            new TokenSampler(SamplingOptions.Greedy).Sample([1f, 2f, 3f, 4f], [0, token]));
        Assert.Contains($"previousTokens[1] ({token}) is not a token id of the 4-token vocabulary", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1.0, 0, 1.0, 0.0)]
    [InlineData(0.8, 40, 0.9, 0.05)]
    [InlineData(1.0, 0, 0.95, 0.0)]
    public void AfterTheFirstCallSamplingAllocatesNothing(double temperature, int topK, double topP, double minP)
    {
        var logits = NormalLogits(5000, 3.0, seed: 4);
        int[] history = [1, 2, 3];
        var sampler = new TokenSampler(Options(temperature, topK, topP, minP, 1.2));
        sampler.Sample(logits, history);
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var step = 0; step < 50; step++)
        {
            sampler.Sample(logits, history);
        }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void ASmallerVocabularyAfterALargerOneIsSampledOnlyWithinItself()
    {
        var sampler = new TokenSampler(new SamplingOptions { TopP = 0.99, Seed = 2 });
        sampler.Sample(NormalLogits(1000, 1.0, seed: 1), []);
        for (var draw = 0; draw < 500; draw++)
        {
            Assert.InRange(sampler.Sample([0.2f, 0.1f, 0.3f], []), 0, 2);
        }
    }
}

public class SamplingOptionsTests
{
    [Theory]
    [InlineData("Temperature", -1.0, "Temperature (-1) must be finite and ≥ 0")]
    [InlineData("Temperature", double.NaN, "Temperature (NaN) must be finite")]
    [InlineData("Temperature", double.PositiveInfinity, "Temperature (Infinity) must be finite")]
    [InlineData("TopK", -1.0, "TopK (-1) must be ≥ 0")]
    [InlineData("TopP", 1.5, "TopP (1.5) must be in (0, 1]")]
    [InlineData("TopP", 0.0, "TopP (0) must be in (0, 1]")]
    [InlineData("TopP", double.NaN, "TopP (NaN) must be in (0, 1]")]
    [InlineData("MinP", -0.1, "MinP (-0.1) must be in [0, 1]")]
    [InlineData("MinP", 1.01, "MinP (1.01) must be in [0, 1]")]
    [InlineData("RepetitionPenalty", 0.0, "RepetitionPenalty (0) must be finite and > 0")]
    [InlineData("RepetitionPenalty", -1.2, "RepetitionPenalty (-1.2) must be finite and > 0")]
    [InlineData("RepetitionPenalty", double.PositiveInfinity, "RepetitionPenalty (Infinity) must be finite")]
    public void AnOutOfRangeSettingIsNamedWithItsValue(string setting, double value, string message)
    {
        var options = With(setting, value);
        var error = Assert.Throws<ArgumentOutOfRangeException>(options.Validate);
        Assert.Equal(setting, error.ParamName);
        Assert.StartsWith(message, error.Message, StringComparison.Ordinal);
        var fromSampler = Assert.Throws<ArgumentOutOfRangeException>(() => new TokenSampler(options));
        Assert.Equal(error.Message, fromSampler.Message);
    }

    [Theory]
    [InlineData("Temperature", 0.0)]
    [InlineData("Temperature", 1e-300)]
    [InlineData("TopK", 0.0)]
    [InlineData("TopK", 1.0)]
    [InlineData("TopP", 1.0)]
    [InlineData("TopP", 1e-9)]
    [InlineData("MinP", 0.0)]
    [InlineData("MinP", 1.0)]
    [InlineData("RepetitionPenalty", 1e-3)]
    public void BoundarySettingsAreAccepted(string setting, double value) => With(setting, value).Validate();

    [Fact]
    public void TheMessageIsCultureInvariant()
    {
        var saved = CultureInfo.CurrentCulture;
        try
        {
            // A decimal comma, as de-DE writes numbers (built by hand: globalization-invariant hosts have no de-DE).
            var comma = (CultureInfo)CultureInfo.InvariantCulture.Clone();
            comma.NumberFormat.NumberDecimalSeparator = ",";
            CultureInfo.CurrentCulture = comma;
            var error = Assert.Throws<ArgumentOutOfRangeException>(new SamplingOptions { TopP = 1.5 }.Validate);
            Assert.StartsWith("TopP (1.5)", error.Message, StringComparison.Ordinal);
        }
        finally
        {
            CultureInfo.CurrentCulture = saved;
        }
    }

    [Fact]
    public void DefaultsAreOffAndGreedyIsTemperatureZero()
    {
        var defaults = new SamplingOptions();
        Assert.Equal((1.0, 0, 1.0, 0.0, 1.0, (long?)null), (defaults.Temperature, defaults.TopK, defaults.TopP, defaults.MinP, defaults.RepetitionPenalty, defaults.Seed));
        Assert.False(defaults.IsGreedy);
        Assert.True(SamplingOptions.Greedy.IsGreedy);
        Assert.Equal(defaults with { Temperature = 0 }, SamplingOptions.Greedy);
    }

    private static SamplingOptions With(string setting, double value) => setting switch
    {
        "Temperature" => new SamplingOptions { Temperature = value },
        "TopK" => new SamplingOptions { TopK = (int)value },
        "TopP" => new SamplingOptions { TopP = value },
        "MinP" => new SamplingOptions { MinP = value },
        "RepetitionPenalty" => new SamplingOptions { RepetitionPenalty = value },
        _ => throw new ArgumentException(setting),
    };
}

public class SamplingGeneratorTests
{
    [Fact]
    public void XoshiroMatchesTheReferenceImplementationFromState1234()
    {
        // Output of Vigna's xoshiro256starstar.c from s = {1, 2, 3, 4}.
        ulong[] reference =
        [
            11520, 0, 1509978240, 1215971899390074240, 1216172134540287360, 607988272756665600,
            16172922978634559625, 8476171486693032832, 10595114339597558777, 2904607092377533576,
        ];
        var generator = Xoshiro256StarStar.FromState(1, 2, 3, 4);
        Assert.Equal(reference, reference.Select(_ => generator.NextUInt64()));
    }

    [Fact]
    public void ASeedStartsFromTheFirstFourSplitMix64Outputs()
    {
        // Output of Vigna's splitmix64.c from x = 1477776061723855037.
        var seeded = new Xoshiro256StarStar(1477776061723855037);
        var fromState = Xoshiro256StarStar.FromState(1985237415132408290, 2979275885539914483, 13511426838097143398, 8488337342461049707);
        for (var step = 0; step < 100; step++)
        {
            Assert.Equal(fromState.NextUInt64(), seeded.NextUInt64());
        }
    }

    [Fact]
    public void NextDoubleIsTheTop53BitsTimesTwoToTheMinus53()
    {
        var words = Xoshiro256StarStar.FromState(1, 2, 3, 4);
        var doubles = Xoshiro256StarStar.FromState(1, 2, 3, 4);
        for (var step = 0; step < 100; step++)
        {
            var word = words.NextUInt64();
            var value = doubles.NextDouble();
            Assert.Equal((double)(word >> 11) / 9007199254740992.0, value);
            Assert.InRange(value, 0.0, Math.BitDecrement(1.0));
        }
    }

    [Fact]
    public void TheAllZeroStateIsRejected() =>
        Assert.Throws<ArgumentException>(() => Xoshiro256StarStar.FromState(0, 0, 0, 0));
}
