using OrtSparse.Runtime.Generation;

namespace OrtSparse.Runtime.Tests;

/// <summary>
/// <see cref="Generator.GetLogits"/> and <see cref="Generator.AppendNextTokens"/> (teacher forcing) on the
/// dense-patched tiny Llama, against ONNX Runtime running the unpatched model on the whole sequence.
/// </summary>
public class TeacherForcingTests
{
    private const int PromptLength = 6;
    private const int ForcedTokens = 12;

    // fp32 logits of magnitude ~10: the fused op and ONNX Runtime's MatMul/Softmax sum in different orders.
    private const double Tolerance = 1e-4;

    private static string UnpatchedModel => Path.Combine(PatchedModels.TinyLlamaFolder, "model.onnx");

    /// <summary>
    /// <paramref name="batch"/> sequences of equal length: PyTorch's prompts and greedy continuations
    /// (models/tiny-llama/generation.json), cut to a prompt and the tokens to force after it.
    /// </summary>
    private static int[][] Sequences(int batch) =>
        PatchedModels.Generations().Take(batch).Select(r => r.PromptIds.Concat(r.GreedyIds).Take(PromptLength + ForcedTokens).ToArray()).ToArray();

    private static Generator Start(Model model, int[][] sequences, int promptLength, int maxNewTokens = 1)
    {
        var generator = model.CreateGenerator(new GeneratorSettings { MaxNewTokens = maxNewTokens, StopTokenIds = [] });
        generator.AppendTokenSequences(sequences.Select(s => (IReadOnlyList<int>)s[..promptLength]).ToList());
        return generator;
    }

    private static void AssertClose(float[] expected, float[] actual, string where)
    {
        Assert.Equal(expected.Length, actual.Length);
        var worst = expected.Zip(actual, (e, a) => Math.Abs((double)e - a)).Max();
        Assert.True(worst <= Tolerance, $"{where}: max abs error {worst:g3} over {Tolerance:g}");
    }

    /// <summary>
    /// The logits after the prompt and after each forced token equal those of the whole sequence run at once, for
    /// one sequence and a batch of three, also with the cache regrown every few tokens and the prompt run in chunks.
    /// </summary>
    [Theory]
    [InlineData(1, 1024, 512)]
    [InlineData(3, 1024, 512)]
    [InlineData(1, 2, 4)]
    [InlineData(3, 2, 4)]
    [InlineData(3, 1, 1)]
    public void ForcedTokensGiveTheLogitsOfTheWholeSequence(int batch, int cacheGrowth, int prefillChunk)
    {
        var sequences = Sequences(batch);
        using var reference = new FullRecomputation(UnpatchedModel);
        var expected = reference.Logits(sequences);
        using var model = Model.Load(PatchedModels.TinyLlama(), TestDevice.Options with { CacheGrowthTokens = cacheGrowth, PrefillChunkTokens = prefillChunk });
        using var generator = Start(model, sequences, PromptLength);

        var sizedForPrompt = 0;
        for (var position = PromptLength - 1; position < sequences[0].Length; position++)
        {
            if (position >= PromptLength)
            {
                generator.AppendNextTokens(sequences.Select(s => s[position]).ToArray());
            }
            for (var b = 0; b < batch; b++)
            {
                AssertClose(expected[b][position], generator.GetLogits(b), $"sequence {b}, position {position}");
            }
            sizedForPrompt = sizedForPrompt == 0 ? generator.Stats.CacheCapacity : sizedForPrompt;
        }
        // The prompt reserves room for itself and one new token, rounded up to the growth step: the forced tokens outgrow small steps.
        Assert.Equal(cacheGrowth < PromptLength + ForcedTokens, generator.Stats.CacheCapacity > sizedForPrompt);
        for (var b = 0; b < batch; b++)
        {
            Assert.Equal(sequences[b], generator.GetSequence(b));
            Assert.Equal(0, generator.GetGeneratedCount(b));
        }
    }

    /// <summary>
    /// Forcing two tokens, generating one greedily and forcing one more equals running the resulting ids at once,
    /// whether each forced token runs as its own step (logits read in between) or the two run as one chunk.
    /// </summary>
    [Theory]
    [InlineData(1, true)]
    [InlineData(3, true)]
    [InlineData(3, false)]
    public void ForcingAndGeneratingMixEqualsTheIdsRunAtOnce(int batch, bool readBetween)
    {
        var sequences = Sequences(batch);
        using var model = Model.Load(PatchedModels.TinyLlama(), TestDevice.Options);
        using var generator = Start(model, sequences, PromptLength, maxNewTokens: 8);
        generator.GetLogits(0);
        foreach (var position in new[] { PromptLength, PromptLength + 1 })
        {
            generator.AppendNextTokens(sequences.Select(s => s[position]).ToArray());
            if (readBetween)
            {
                generator.GetLogits(0);
            }
        }
        generator.GenerateNextToken();
        generator.AppendNextTokens(sequences.Select(s => s[PromptLength + 3]).ToArray());
        var mixed = Enumerable.Range(0, batch).Select(generator.GetLogits).ToArray();

        var ids = Enumerable.Range(0, batch).Select(b => generator.GetSequence(b).ToArray()).ToArray();
        Assert.All(ids, s => Assert.Equal(PromptLength + 4, s.Length));
        using var atOnce = Start(model, ids, ids[0].Length);
        using var reference = new FullRecomputation(UnpatchedModel);
        var expected = reference.Logits(ids);
        for (var b = 0; b < batch; b++)
        {
            Assert.Equal(1, generator.GetGeneratedCount(b));
            Assert.Equal(FullRecomputation.ArgMax(expected[b][PromptLength + 1]), ids[b][PromptLength + 2]);
            AssertClose(atOnce.GetLogits(b), mixed[b], $"sequence {b} against its ids run at once");
            AssertClose(expected[b][^1], mixed[b], $"sequence {b} against ONNX Runtime on the unpatched model");
        }
    }

    [Fact]
    public void AppendNextTokensTakesOneTokenPerSequence()
    {
        using var model = Model.Load(PatchedModels.TinyLlama(), TestDevice.Options);
        using var generator = Start(model, Sequences(3), PromptLength);
        var error = Assert.Throws<ArgumentException>(() => generator.AppendNextTokens([1, 2]));
        Assert.Contains("one token per sequence: 2 given for 3", error.Message);
    }

    /// <summary>A token outside the vocabulary is refused, and no sequence takes any of the tokens given with it.</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void TokensOutsideTheVocabularyAreRefused(bool negative)
    {
        var sequences = Sequences(3);
        using var model = Model.Load(PatchedModels.TinyLlama(), TestDevice.Options);
        using var generator = Start(model, sequences, PromptLength);
        var vocabulary = generator.GetLogits(0).Length;
        var bad = negative ? -1 : vocabulary;
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => generator.AppendNextTokens([5, 6, bad]));
        Assert.Contains($"token id {bad}, outside the vocabulary [0, {vocabulary})", error.Message);
        Assert.All(Enumerable.Range(0, 3), b => Assert.Equal(sequences[b][..PromptLength], generator.GetSequence(b)));
    }

    [Fact]
    public void AStoppedSequenceTakesNoMoreTokens()
    {
        using var model = Model.Load(PatchedModels.TinyLlama(), TestDevice.Options);
        using var generator = Start(model, Sequences(1), PromptLength, maxNewTokens: 1);
        generator.GenerateNextToken();
        Assert.True(generator.IsDone);
        var error = Assert.Throws<InvalidOperationException>(() => generator.AppendNextTokens([5]));
        Assert.Contains("Sequence 0 has stopped (Length)", error.Message);
    }

    [Fact]
    public void LogitsAndForcedTokensNeedAPrompt()
    {
        using var model = Model.Load(PatchedModels.TinyLlama(), TestDevice.Options);
        using var generator = model.CreateGenerator();
        Assert.Contains("Append a prompt", Assert.Throws<InvalidOperationException>(() => generator.GetLogits(0)).Message);
        Assert.Contains("Append a prompt", Assert.Throws<InvalidOperationException>(() => generator.AppendNextTokens([5])).Message);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(1)]
    public void LogitsOfASequenceThatDoesNotExistAreRefused(int index)
    {
        using var model = Model.Load(PatchedModels.TinyLlama(), TestDevice.Options);
        using var generator = Start(model, Sequences(1), PromptLength);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => generator.GetLogits(index));
        Assert.Contains($"Sequence {index} does not exist (the generator has 1)", error.Message);
    }
}
