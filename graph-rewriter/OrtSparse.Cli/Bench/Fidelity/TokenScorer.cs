using OrtSparse.Runtime.Generation;

namespace OrtSparse.Cli.Bench.Fidelity;

/// <summary>The model's verdict on one given token: its own top choice there and the log-probability it gave the token.</summary>
/// <param name="Argmax">The token of highest logit (the lowest id on a tie).</param>
/// <param name="LogProbability">log softmax(logits)[token].</param>
public readonly record struct ScoredToken(int Argmax, double LogProbability)
{
    /// <summary>Scores <paramref name="token"/> under <paramref name="logits"/>, in double precision.</summary>
    /// <param name="logits">Next-token logits.</param>
    /// <param name="token">The true next token.</param>
    public static ScoredToken Of(ReadOnlySpan<float> logits, int token)
    {
        if ((uint)token >= (uint)logits.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(token), $"token {token} is outside the {logits.Length} logits");
        }
        var argmax = 0;
        for (var i = 1; i < logits.Length; i++)
        {
            if (logits[i] > logits[argmax])
            {
                argmax = i;
            }
        }
        double max = logits[argmax];
        var sum = 0.0;
        foreach (var logit in logits)
        {
            sum += Math.Exp(logit - max);
        }
        return new ScoredToken(argmax, logits[token] - max - Math.Log(sum));
    }
}

/// <summary>
/// Teacher-forced scoring with a <see cref="Generator"/> on a loaded model: a batch of prompts is prefilled, then given
/// continuations are fed one decode step per token (<see cref="Generator.AppendNextTokens"/>, <see cref="Generator.GetLogits"/>).
/// </summary>
/// <param name="model">The model (not owned).</param>
public sealed class GeneratorScorer(Model model)
{
    /// <summary>
    /// For each sequence b, scores <paramref name="targets"/>[b][i] given <paramref name="prompts"/>[b] and
    /// targets[b][..i]. Every score comes from a decode step (one new token): the prompt's last token is fed as one.
    /// </summary>
    /// <param name="prompts">Prompts of one length, at least 2 tokens.</param>
    /// <param name="targets">The continuation of each prompt, at least one token.</param>
    /// <returns>Per sequence, one <see cref="ScoredToken"/> per target.</returns>
    public ScoredToken[][] Score(IReadOnlyList<int[]> prompts, IReadOnlyList<int[]> targets)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(targets);
        if (prompts.Count == 0 || prompts.Count != targets.Count)
        {
            throw new ArgumentException($"one target list per prompt: {prompts.Count} prompts, {targets.Count} target lists");
        }
        if (prompts.Any(p => p.Length != prompts[0].Length) || prompts[0].Length < 2)
        {
            throw new ArgumentException($"the prompts of a batch must have one length of at least 2 tokens (lengths {string.Join(", ", prompts.Select(p => p.Length).Distinct())})");
        }
        if (targets.Any(t => t.Length == 0))
        {
            throw new ArgumentException("every prompt needs at least one target token");
        }
        var steps = targets.Max(t => t.Length);
        using var generator = model.CreateGenerator(new GeneratorSettings { MaxNewTokens = steps + 1, StopTokenIds = [] });
        generator.AppendTokenSequences(prompts.Select(p => (IReadOnlyList<int>)p[..^1]).ToList());
        generator.GetLogits(0); // the prefill, so that the prompts' last tokens run as a decode step
        generator.AppendNextTokens(prompts.Select(p => p[^1]).ToArray());
        var scores = targets.Select(t => new ScoredToken[t.Length]).ToArray();
        for (var step = 0; step < steps; step++)
        {
            for (var b = 0; b < prompts.Count; b++)
            {
                if (step < targets[b].Length)
                {
                    scores[b][step] = ScoredToken.Of(generator.GetLogits(b), targets[b][step]);
                }
            }
            if (step + 1 < steps)
            {
                // A sequence whose targets have ended repeats its last one: it keeps the batch in step, its scores are not read.
                generator.AppendNextTokens(targets.Select(t => t[Math.Min(step, t.Length - 1)]).ToArray());
            }
        }
        return scores;
    }
}
