namespace OrtSparse.Runtime.Generation;

/// <summary>Timings and counts of a generator's work so far.</summary>
/// <param name="PromptTokens">Tokens appended (and run through the model) as prompts.</param>
/// <param name="GeneratedTokens">Tokens sampled, over all sequences.</param>
/// <param name="DecodeTokens">Tokens sampled by steps that ran one token per sequence (the decode phase).</param>
/// <param name="TimeToFirstToken">From the first prompt step to the first sampled token; zero before it.</param>
/// <param name="PrefillTime">Time of the steps that ran several tokens per sequence (prompts), sampling included.</param>
/// <param name="DecodeTime">Time of the steps that ran one token per sequence, sampling included.</param>
/// <param name="DecodeSteps">Number of those steps.</param>
/// <param name="CacheReadFraction">Mean over decode steps of the share of the KV cache read, from the methods' selection rules (<see cref="CacheReadEstimate"/>); 1 when there were none.</param>
/// <param name="CacheCapacity">Positions the cache buffers hold now.</param>
public sealed record GenerationStats(int PromptTokens, int GeneratedTokens, int DecodeTokens, TimeSpan TimeToFirstToken, TimeSpan PrefillTime,
    TimeSpan DecodeTime, int DecodeSteps, double CacheReadFraction, int CacheCapacity)
{
    /// <summary>Time spent inside ONNX Runtime's session runs (the rest of the steps is the loop: inputs, logits to the host, sampling).</summary>
    public TimeSpan RunTime { get; init; }

    /// <summary>Prompt tokens per second of prefill.</summary>
    public double PrefillTokensPerSecond => PrefillTime > TimeSpan.Zero ? PromptTokens / PrefillTime.TotalSeconds : 0;

    /// <summary>Generated tokens per second after the first token (over all sequences of a batch).</summary>
    public double DecodeTokensPerSecond => DecodeTime > TimeSpan.Zero ? DecodeTokens / DecodeTime.TotalSeconds : 0;
}
