using System.Globalization;

namespace OrtSparse.Runtime.Sampling;

/// <summary>
/// How <see cref="TokenSampler"/> picks the next token from a step's logits. The defaults sample from the
/// plain softmax; each filter is off at its default. The filters run in Hugging Face transformers' order:
/// repetition penalty, temperature, top-k, top-p, min-p.
/// </summary>
public sealed record SamplingOptions
{
    /// <summary>Always the highest logit (after the repetition penalty); ties go to the lowest token id.</summary>
    public static SamplingOptions Greedy { get; } = new() { Temperature = 0 };

    /// <summary>
    /// Logits are divided by it before the softmax: below 1 sharpens, above 1 flattens. 0 means greedy decoding
    /// (the repetition penalty still applies; top-k, top-p, min-p and <see cref="Seed"/> have no effect).
    /// Finite and ≥ 0; default 1.
    /// </summary>
    public double Temperature { get; init; } = 1;

    /// <summary>
    /// Keep only the <c>TopK</c> most probable tokens; ties at the cut go to the lower token ids (Hugging Face keeps
    /// every token tied with the k-th). 0 (the default) is off; 1 is greedy; a value ≥ the vocabulary size keeps all.
    /// </summary>
    public int TopK { get; init; }

    /// <summary>
    /// Nucleus sampling: keep the smallest set of most probable tokens whose probability (after top-k) sums to at
    /// least <c>TopP</c>, and always at least one; among tokens of equal probability the lower ids come first.
    /// In (0, 1]; 1 (the default) is off.
    /// </summary>
    public double TopP { get; init; } = 1;

    /// <summary>
    /// Keep only tokens whose probability is at least <c>MinP</c> times the largest probability. In [0, 1];
    /// 0 (the default) is off; 1 keeps only the tokens tied with the most probable.
    /// </summary>
    public double MinP { get; init; }

    /// <summary>
    /// The CTRL / Hugging Face repetition penalty: the logit of every token already in the sequence (prompt and
    /// generated tokens, each counted once) is divided by it when positive and multiplied by it when negative, so
    /// values above 1 discourage repeats. Finite and &gt; 0; 1 (the default) is off.
    /// </summary>
    public double RepetitionPenalty { get; init; } = 1;

    /// <summary>
    /// Seeds the sampler's generator (<see cref="Xoshiro256StarStar"/>), whose numbers are the same on every platform
    /// and .NET version, so the same seed, options and logits give the same tokens (see <see cref="TokenSampler"/>).
    /// Null (the default) draws a seed from the operating system's generator; <see cref="TokenSampler.Seed"/> tells which.
    /// </summary>
    public long? Seed { get; init; }

    /// <summary>True when <see cref="Temperature"/> is 0: sampling is the argmax and draws no random numbers.</summary>
    public bool IsGreedy => Temperature == 0;

    /// <summary>Throws an <see cref="ArgumentOutOfRangeException"/> naming the first setting out of range and its value.</summary>
    public void Validate()
    {
        if (!(double.IsFinite(Temperature) && Temperature >= 0))
        {
            throw OutOfRange(nameof(Temperature), Temperature, "must be finite and ≥ 0 (0 = greedy)");
        }
        if (TopK < 0)
        {
            throw OutOfRange(nameof(TopK), TopK, "must be ≥ 0 (0 = off)");
        }
        if (!(TopP > 0 && TopP <= 1))
        {
            throw OutOfRange(nameof(TopP), TopP, "must be in (0, 1] (1 = off)");
        }
        if (!(MinP >= 0 && MinP <= 1))
        {
            throw OutOfRange(nameof(MinP), MinP, "must be in [0, 1] (0 = off)");
        }
        if (!(double.IsFinite(RepetitionPenalty) && RepetitionPenalty > 0))
        {
            throw OutOfRange(nameof(RepetitionPenalty), RepetitionPenalty, "must be finite and > 0 (1 = off)");
        }
    }

    private static ArgumentOutOfRangeException OutOfRange(string name, object value, string rule) =>
        new(name, value, string.Create(CultureInfo.InvariantCulture, $"{name} ({value}) {rule}"));
}
