using OrtSparse.Runtime.Text;

namespace OrtSparse.Cli.Bench.Fidelity;

/// <summary>One needle-in-code prompt and the answer it asks for.</summary>
/// <param name="Length">Prompt tokens (the haystack, the needle line and the question).</param>
/// <param name="DepthPercent">Where the needle was asked to go, in percent of the haystack.</param>
/// <param name="Trial">The trial number at this length and depth.</param>
/// <param name="Secret">The 8 lowercase hex characters of the needle.</param>
/// <param name="Prompt">The prompt: code, the needle line at a line boundary, more code, a newline and <see cref="NeedlePrompts.Question"/>.</param>
/// <param name="Answer">The tokens that follow the question's tokens in the needle line: they decode to <paramref name="Secret"/>.</param>
/// <param name="NeedleStart">Index in <paramref name="Prompt"/> of the needle line's first token.</param>
public sealed record NeedleCase(int Length, int DepthPercent, int Trial, string Secret, int[] Prompt, int[] Answer, int NeedleStart)
{
    /// <summary>Whether the model found the needle: its argmax after the prompt, teacher-forced, is every answer token.</summary>
    /// <param name="argmax">The model's argmax at each answer position, in order.</param>
    public bool IsFound(IReadOnlyList<int> argmax)
    {
        ArgumentNullException.ThrowIfNull(argmax);
        if (argmax.Count != Answer.Length)
        {
            throw new ArgumentException($"{argmax.Count} argmaxes given for an answer of {Answer.Length} tokens", nameof(argmax));
        }
        return Answer.Select((token, i) => argmax[i] == token).All(same => same);
    }
}

/// <summary>
/// Needle-in-code prompts: a haystack of held-out code with the line <c>SECRET_TOKEN = "&lt;8 hex&gt;"</c> at a line
/// boundary at a given depth, ending with a newline and <c>SECRET_TOKEN = "</c>, so the model must copy the secret.
/// </summary>
public sealed class NeedlePrompts
{
    /// <summary>What the prompt ends with: the needle line's beginning.</summary>
    public const string Question = "SECRET_TOKEN = \"";

    private const int SecretDraws = 1000;
    private const int MinimumHaystack = 16;

    private readonly Tokenizer _tokenizer;
    private readonly int[] _heldOut;
    private readonly bool[] _endsLine;
    private readonly int[] _question;
    private readonly int[] _newline;

    /// <summary>Prompts from <paramref name="heldOut"/>, tokenized by <paramref name="tokenizer"/>.</summary>
    /// <param name="tokenizer">The model's tokenizer.</param>
    /// <param name="heldOut">The held-out token stream the haystacks are cut from.</param>
    public NeedlePrompts(Tokenizer tokenizer, int[] heldOut)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(heldOut);
        _tokenizer = tokenizer;
        _heldOut = heldOut;
        // A line boundary is a position after a token whose text ends with a newline.
        _endsLine = Enumerable.Range(0, tokenizer.VocabularySize).Select(id => tokenizer.Decode([id]).EndsWith('\n')).ToArray();
        _question = tokenizer.Encode(Question);
        _newline = tokenizer.Encode("\n");
    }

    /// <summary>Whether a line starts at <paramref name="index"/> of <paramref name="tokens"/> (its start, or after a token ending in a newline).</summary>
    public bool IsLineStart(IReadOnlyList<int> tokens, int index)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        return index == 0 || _endsLine[tokens[index - 1]];
    }

    /// <summary>
    /// The prompt of <paramref name="length"/> tokens for one trial: a haystack from a seeded offset of the held-out
    /// stream, a seeded secret, the needle at the line boundary nearest <paramref name="depthPercent"/> of the haystack.
    /// The same arguments give the same case.
    /// </summary>
    /// <param name="length">Prompt tokens.</param>
    /// <param name="depthPercent">Depth of the needle, 0 to 100.</param>
    /// <param name="trial">The trial (another offset and secret).</param>
    /// <param name="seed">The benchmark's seed.</param>
    /// <exception cref="ArgumentException">The length leaves too little haystack, or the held-out stream is shorter than the haystack.</exception>
    public NeedleCase Build(int length, int depthPercent, int trial, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(trial);
        ArgumentOutOfRangeException.ThrowIfNegative(depthPercent);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(depthPercent, 100);
        var random = new Random(unchecked(((seed * 1_000_003) + length) * 1009 + (depthPercent * 101) + trial));
        var (secret, line, answer) = DrawSecret(random);
        var haystack = length - line.Length - _newline.Length - _question.Length;
        if (haystack < MinimumHaystack)
        {
            throw new ArgumentException($"needle length {length} leaves {haystack} tokens of haystack around a needle of {line.Length} and a question of {_newline.Length + _question.Length}; use at least {length - haystack + MinimumHaystack}");
        }
        if (_heldOut.Length < haystack)
        {
            throw new ArgumentException($"the held-out text has {_heldOut.Length} tokens, fewer than the {haystack} of a needle haystack at length {length}; give more text or shorter --needle-lengths");
        }
        var offset = random.Next(0, _heldOut.Length - haystack + 1);
        var code = _heldOut.AsSpan(offset, haystack);
        var at = NearestLineStart(code, depthPercent / 100.0 * haystack);
        int[] prompt = [.. code[..at], .. line, .. code[at..], .. _newline, .. _question];
        return new NeedleCase(length, depthPercent, trial, secret, prompt, answer, at);
    }

    /// <summary>
    /// A secret whose needle line tokenizes as the question's tokens, then tokens that decode to exactly the secret,
    /// then the rest: redrawn while the tokenizer merges across either boundary.
    /// </summary>
    private (string Secret, int[] Line, int[] Answer) DrawSecret(Random random)
    {
        for (var draw = 0; draw < SecretDraws; draw++)
        {
            var secret = string.Concat(Enumerable.Range(0, 8).Select(_ => "0123456789abcdef"[random.Next(16)]));
            var line = _tokenizer.Encode($"{Question}{secret}\"\n");
            if (line.Length <= _question.Length || !line.AsSpan(0, _question.Length).SequenceEqual(_question))
            {
                continue;
            }
            for (var end = _question.Length + 1; end < line.Length; end++)
            {
                var text = _tokenizer.Decode(line.AsSpan(_question.Length, end - _question.Length));
                if (text == secret)
                {
                    return (secret, line, line[_question.Length..end]);
                }
                if (text.Length >= secret.Length)
                {
                    break;
                }
            }
        }
        throw new InvalidOperationException($"in {SecretDraws} draws no secret tokenized apart from '{Question}' and the closing quote; the tokenizer merges across them");
    }

    /// <summary>The line start of <paramref name="code"/> nearest <paramref name="target"/> (the earlier one on a tie).</summary>
    private int NearestLineStart(ReadOnlySpan<int> code, double target)
    {
        var best = 0;
        for (var i = 1; i <= code.Length; i++)
        {
            if (_endsLine[code[i - 1]] && Math.Abs(i - target) < Math.Abs(best - target))
            {
                best = i;
            }
        }
        return best;
    }
}
