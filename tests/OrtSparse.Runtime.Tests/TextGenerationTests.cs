using OrtSparse.Runtime.Generation;
using OrtSparse.Runtime.Sampling;

namespace OrtSparse.Runtime.Tests;

public class TextGenerationTests
{
    private static Model Load() => Model.Load(PatchedModels.TinyLlama(), TestDevice.Options);

    public static TheoryData<int> Runs() => [.. Enumerable.Range(0, PatchedModels.Generations().Count)];

    /// <summary>From text to text: the prompt encodes to PyTorch's ids and the generated text is Hugging Face's decoding of PyTorch's greedy ids.</summary>
    [Theory]
    [MemberData(nameof(Runs))]
    public void GreedyTextEqualsHuggingFaceDecodingOfPyTorchGreedy(int run)
    {
        var (prompt, promptIds, greedyIds, greedyText) = PatchedModels.Generations()[run];
        using var model = Load();
        Assert.Equal(promptIds, model.EncodePrompt(prompt));
        var result = model.Generate(prompt, new GeneratorSettings { MaxNewTokens = greedyIds.Length, StopTokenIds = [], SkipSpecialTokens = false });
        Assert.Equal(greedyIds, result.TokenIds);
        Assert.Equal(greedyText, result.Text);
        Assert.Equal(FinishReason.Length, result.FinishReason);
    }

    [Fact]
    public async Task StreamingGivesTheSameTextInPieces()
    {
        var (prompt, _, greedyIds, greedyText) = PatchedModels.Generations()[1];
        using var model = Load();
        var settings = new GeneratorSettings { MaxNewTokens = greedyIds.Length, StopTokenIds = [], SkipSpecialTokens = false };
        var pieces = new List<string>();
        await foreach (var piece in model.GenerateTextAsync(prompt, settings, TestContext.Current.CancellationToken))
        {
            pieces.Add(piece);
        }
        Assert.True(pieces.Count > 1);
        Assert.Equal(greedyText, string.Concat(pieces));
    }

    [Fact]
    public async Task CancellingStopsTheStream()
    {
        var (prompt, _, _, _) = PatchedModels.Generations()[0];
        using var model = Load();
        using var cancellation = new CancellationTokenSource();
        var pieces = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var _ in model.GenerateTextAsync(prompt, new GeneratorSettings { MaxNewTokens = 1000, StopTokenIds = [] }, cancellation.Token))
            {
                if (++pieces == 3)
                {
                    await cancellation.CancelAsync();
                }
            }
        });
        Assert.Equal(3, pieces);
    }

    /// <summary>A stop string ends the text right before it, even when it spans tokens.</summary>
    [Fact]
    public void AStopStringEndsTheTextBeforeIt()
    {
        var (prompt, _, greedyIds, greedyText) = PatchedModels.Generations()[0];
        var stop = greedyText.Substring(10, 6);
        using var model = Load();
        var result = model.Generate(prompt, new GeneratorSettings { MaxNewTokens = greedyIds.Length, StopTokenIds = [], StopStrings = [stop], SkipSpecialTokens = false });
        Assert.Equal(greedyText[..greedyText.IndexOf(stop, StringComparison.Ordinal)], result.Text);
        Assert.Equal(FinishReason.Stop, result.FinishReason);
        Assert.True(result.TokenIds.Count < greedyIds.Length);
    }

    [Fact]
    public void SeededSamplingIsReproducibleAndSeedsDiffer()
    {
        var (prompt, _, _, _) = PatchedModels.Generations()[2];
        using var model = Load();
        GeneratorSettings Seeded(long seed) => new()
        {
            MaxNewTokens = 24,
            StopTokenIds = [],
            Sampling = new SamplingOptions { Temperature = 1.5, TopK = 50, TopP = 0.95, Seed = seed },
        };
        var first = model.Generate(prompt, Seeded(11)).TokenIds;
        Assert.Equal(first, model.Generate(prompt, Seeded(11)).TokenIds);
        Assert.NotEqual(first, model.Generate(prompt, Seeded(12)).TokenIds);
    }

    [Fact]
    public void ABatchOfTextsEqualsEachAlone()
    {
        var runs = PatchedModels.Generations();
        using var model = Load();
        var settings = new GeneratorSettings { MaxNewTokens = 10, StopTokenIds = [], SkipSpecialTokens = false };
        var batch = model.Generate(runs.Select(r => r.Prompt).ToList(), settings);
        for (var i = 0; i < runs.Count; i++)
        {
            Assert.Equal(model.Generate(runs[i].Prompt, settings).Text, batch[i].Text);
        }
    }

    [Fact]
    public void AnEmptyPromptIsRefused()
    {
        using var model = Load();
        Assert.Contains("empty", Assert.Throws<ArgumentException>(() => model.Generate("")).Message);
    }
}
