using OrtSparse.Runtime.Sampling;

namespace OrtSparse.Runtime.Generation;

/// <summary>What a <see cref="Generator"/> generates: sampling, length and stop conditions.</summary>
public sealed record GeneratorSettings
{
    /// <summary>How the next token is picked. Default: greedy.</summary>
    public SamplingOptions Sampling { get; init; } = SamplingOptions.Greedy;

    /// <summary>The most tokens generated per sequence. Default 256.</summary>
    public int MaxNewTokens { get; init; } = 256;

    /// <summary>Token ids that end a sequence (kept in its tokens, not in its text); null uses the tokenizer's end-of-sequence ids.</summary>
    public IReadOnlyList<int>? StopTokenIds { get; init; }

    /// <summary>Texts that end a sequence; the text stops before them. Needs the model's tokenizer.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];

    /// <summary>Whether special tokens (added tokens marked special) are left out of the text. Default true.</summary>
    public bool SkipSpecialTokens { get; init; } = true;

    internal void Validate()
    {
        ArgumentNullException.ThrowIfNull(Sampling);
        Sampling.Validate();
        if (MaxNewTokens < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxNewTokens), $"MaxNewTokens ({MaxNewTokens}) must be positive.");
        }
        ArgumentNullException.ThrowIfNull(StopStrings);
        if (StopStrings.Any(string.IsNullOrEmpty))
        {
            throw new ArgumentException("StopStrings may not contain an empty string.", nameof(StopStrings));
        }
    }
}

/// <summary>Why a sequence stopped.</summary>
public enum FinishReason
{
    /// <summary>It has not stopped.</summary>
    None,

    /// <summary>A stop token or stop string.</summary>
    Stop,

    /// <summary><see cref="GeneratorSettings.MaxNewTokens"/> or the model's maximum length.</summary>
    Length,
}
