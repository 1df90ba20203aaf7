using System.Runtime.CompilerServices;
using System.Text;
using OrtSparse.Runtime.Text;

namespace OrtSparse.Runtime.Generation;

/// <summary>What generating from a prompt produced.</summary>
/// <param name="Text">The generated text (without the prompt, stop tokens or stop strings).</param>
/// <param name="TokenIds">The generated token ids (a stop token included).</param>
/// <param name="FinishReason">Why generation stopped.</param>
/// <param name="Stats">Timings and counts (of the whole batch, for a batch).</param>
public sealed record GenerationResult(string Text, IReadOnlyList<int> TokenIds, FinishReason FinishReason, GenerationStats Stats);

public sealed partial class Model
{
    /// <summary>Generates from <paramref name="prompt"/> and returns the text when done.</summary>
    /// <param name="prompt">The prompt text; the tokenizer's BOS token is put first when its config asks for it.</param>
    /// <param name="settings">Sampling, length and stop conditions; null means greedy with the defaults.</param>
    public GenerationResult Generate(string prompt, GeneratorSettings? settings = null) => Generate([prompt], settings)[0];

    /// <summary>Generates from several prompts at once (one batch) and returns each one's text.</summary>
    /// <param name="prompts">The prompt texts.</param>
    /// <param name="settings">Sampling, length and stop conditions; null means greedy with the defaults.</param>
    public IReadOnlyList<GenerationResult> Generate(IReadOnlyList<string> prompts, GeneratorSettings? settings = null)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        var ids = prompts.Select(p => EncodePrompt(p)).ToList();
        using var generator = CreateGenerator(settings);
        generator.AppendTokenSequences(ids);
        var texts = prompts.Select(_ => new StringBuilder()).ToList();
        while (!generator.IsDone)
        {
            generator.GenerateNextToken();
            for (var i = 0; i < texts.Count; i++)
            {
                texts[i].Append(generator.TakeText(i));
            }
        }
        return ids.Select((prompt, i) => new GenerationResult(texts[i].ToString(), generator.GetSequence(i).Skip(prompt.Length).ToList(),
            generator.GetFinishReason(i), generator.Stats)).ToList();
    }

    /// <summary>
    /// Streams the text generated from <paramref name="prompt"/> as it is produced: each piece is whole
    /// UTF-8 characters, and text that might begin a stop string is held back until it is known not to.
    /// Model steps run on the thread pool; cancelling stops between two tokens.
    /// </summary>
    /// <param name="prompt">The prompt text.</param>
    /// <param name="settings">Sampling, length and stop conditions; null means greedy with the defaults.</param>
    /// <param name="cancellationToken">Stops the generation (the enumeration throws <see cref="OperationCanceledException"/>).</param>
    public async IAsyncEnumerable<string> GenerateTextAsync(string prompt, GeneratorSettings? settings = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var ids = EncodePrompt(prompt);
        using var generator = CreateGenerator(settings);
        generator.AppendTokens(ids);
        await foreach (var piece in StreamAsync(generator, cancellationToken).ConfigureAwait(false))
        {
            yield return piece;
        }
    }

    /// <summary>Runs <paramref name="generator"/> (one sequence) to the end on the thread pool, yielding its text as it comes.</summary>
    /// <param name="generator">A generator of this model with a prompt appended.</param>
    /// <param name="cancellationToken">Stops between two tokens.</param>
    public static async IAsyncEnumerable<string> StreamAsync(Generator generator, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(generator);
        while (!generator.IsDone)
        {
            cancellationToken.ThrowIfCancellationRequested();
            await Task.Run(generator.GenerateNextToken, cancellationToken).ConfigureAwait(false);
            var text = generator.TakeText(0);
            if (text.Length > 0)
            {
                yield return text;
            }
        }
    }

    /// <summary>The token ids of <paramref name="prompt"/>, with the BOS token first when the tokenizer's config asks for it.</summary>
    /// <exception cref="InvalidOperationException">The model has no tokenizer.</exception>
    /// <exception cref="ArgumentException">The prompt is empty.</exception>
    public int[] EncodePrompt(string prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var tokenizer = RequireTokenizer();
        if (prompt.Length == 0)
        {
            throw new ArgumentException("The prompt is empty.", nameof(prompt));
        }
        var ids = tokenizer.Encode(prompt);
        return tokenizer.AddBosToken && tokenizer.BosTokenId is { } bos ? [bos, .. ids] : ids;
    }

    private Tokenizer RequireTokenizer() => Tokenizer
        ?? throw new InvalidOperationException($"The model's folder ({System.IO.Path.GetDirectoryName(Config.Path)}) has no tokenizer.json; generate from token ids with a Generator.");
}
