using Google.Protobuf;
using OrtSparse.GraphRewriter;
using OrtSparse.Onnx;
using OrtSparse.Runtime.Generation;

namespace OrtSparse.Runtime.Tests;

public class GeneratorTests
{
    private static readonly Dictionary<string, double> WholeCache = new() { ["budget"] = 1.0, ["dense_below"] = 0 };

    private static Model Load(string method = "dense", ModelOptions? options = null, IReadOnlyDictionary<string, double>? parameters = null) =>
        Model.Load(PatchedModels.TinyLlama(method, parameters), options ?? TestDevice.Options);

    private static GeneratorSettings GreedyFor(int count) => new() { MaxNewTokens = count, StopTokenIds = [] };

    internal static int[] Greedy(Model model, int[] prompt, int count)
    {
        using var generator = model.CreateGenerator(GreedyFor(count));
        generator.AppendTokens(prompt);
        while (!generator.IsDone)
        {
            generator.GenerateNextToken();
        }
        return generator.GetSequence(0).Skip(prompt.Length).ToArray();
    }

    public static TheoryData<int> Runs() => [.. Enumerable.Range(0, PatchedModels.Generations().Count)];

    /// <summary>The dense-patched model, through the cache, continues each prompt exactly as PyTorch's original model does.</summary>
    [Theory]
    [MemberData(nameof(Runs))]
    public void DenseGreedyEqualsPyTorchGreedy(int run)
    {
        var (_, prompt, expected, _) = PatchedModels.Generations()[run];
        using var model = Load();
        Assert.Equal(expected, Greedy(model, prompt, expected.Length));
    }

    /// <summary>Small growth steps and prefill chunks (the cache regrows several times, the prompt runs in pieces) change nothing.</summary>
    [Theory]
    [InlineData(1, 1)]
    [InlineData(3, 2)]
    [InlineData(8, 5)]
    public void CacheGrowthAndPrefillChunksGiveTheSameTokens(int growth, int chunk)
    {
        var (_, prompt, expected, _) = PatchedModels.Generations()[1];
        using var model = Load(options: TestDevice.Options with { CacheGrowthTokens = growth, PrefillChunkTokens = chunk });
        Assert.Equal(expected, Greedy(model, prompt, expected.Length));
    }

    /// <summary>The cache is sized once, for the prompt and the new tokens (rounded up to the growth step), and grows only for a continuation.</summary>
    [Fact]
    public void TheCacheIsSizedOnceForThePromptAndTheNewTokens()
    {
        var (_, prompt, _, _) = PatchedModels.Generations()[1];
        using var model = Load(options: TestDevice.Options with { CacheGrowthTokens = 16 });
        using var generator = model.CreateGenerator(GreedyFor(20));
        generator.AppendTokens(prompt);
        var capacities = new HashSet<int>();
        while (!generator.IsDone)
        {
            generator.GenerateNextToken();
            capacities.Add(generator.Stats.CacheCapacity);
        }
        Assert.Equal([(prompt.Length + 20 + 15) / 16 * 16], capacities);
        generator.AppendTokens(prompt);
        generator.GenerateNextToken();
        Assert.True(generator.Stats.CacheCapacity >= prompt.Length * 2 + 20);
    }

    /// <summary>
    /// Methods with state (quest's page summaries, regrown with the cache) and topk, with a budget that
    /// covers the whole cache and no dense fallback, select every key: the tokens equal PyTorch's.
    /// </summary>
    [Theory]
    [InlineData("topk")]
    [InlineData("quest")]
    public void SparseMethodsWithTheWholeCacheInBudgetEqualPyTorch(string method)
    {
        var (_, prompt, expected, _) = PatchedModels.Generations()[1];
        using var model = Load(method, TestDevice.Options with { CacheGrowthTokens = 4, PrefillChunkTokens = 7 }, WholeCache);
        Assert.Equal(expected, Greedy(model, prompt, expected.Length));
    }

    /// <summary>A small budget reads a fraction of the cache; the stats say how much, and it differs between methods.</summary>
    [Fact]
    public void ASmallBudgetReadsPartOfTheCache()
    {
        var parameters = new Dictionary<string, double> { ["budget"] = 4, ["dense_below"] = 0, ["sink"] = 1, ["window"] = 4 };
        using var model = Load("quest", parameters: parameters);
        using var generator = model.CreateGenerator(GreedyFor(16));
        generator.AppendTokens(PatchedModels.Generations()[1].PromptIds);
        while (!generator.IsDone)
        {
            generator.GenerateNextToken();
        }
        var stats = generator.Stats;
        Assert.Equal(16, stats.GeneratedTokens);
        Assert.InRange(stats.CacheReadFraction, 0.2, 0.8);
        Assert.Equal(15, stats.DecodeSteps);
        Assert.True(stats.TimeToFirstToken > TimeSpan.Zero && stats.DecodeTokensPerSecond > 0 && stats.PrefillTokensPerSecond > 0);
    }

    /// <summary>Prompts of different lengths in one batch give each the tokens it gets alone.</summary>
    [Fact]
    public void ABatchOfUnequalPromptsEqualsEachAlone()
    {
        var runs = PatchedModels.Generations();
        using var model = Load(options: TestDevice.Options with { PrefillChunkTokens = 4 });
        using var generator = model.CreateGenerator(GreedyFor(runs[0].GreedyIds.Length));
        generator.AppendTokenSequences(runs.Select(r => (IReadOnlyList<int>)r.PromptIds).ToList());
        while (!generator.IsDone)
        {
            generator.GenerateNextToken();
        }
        for (var i = 0; i < runs.Count; i++)
        {
            Assert.Equal(runs[i].GreedyIds, generator.GetSequence(i).Skip(runs[i].PromptIds.Length));
            Assert.Equal(FinishReason.Length, generator.GetFinishReason(i));
        }
    }

    /// <summary>Generators on one model from several threads at once give the tokens each gives alone.</summary>
    [Fact]
    public void ParallelGeneratorsEqualSequentialOnes()
    {
        var runs = PatchedModels.Generations();
        using var model = Load("quest", TestDevice.Options with { CacheGrowthTokens = 2 }, WholeCache);
        var work = Enumerable.Range(0, 8).Select(i => runs[i % runs.Count]).ToList();
        var parallel = new int[work.Count][];
        Parallel.For(0, work.Count, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i => parallel[i] = Greedy(model, work[i].PromptIds, work[i].GreedyIds.Length));
        for (var i = 0; i < work.Count; i++)
        {
            Assert.Equal(work[i].GreedyIds, parallel[i]);
        }
    }

    /// <summary>A continuation appended after generating equals generating from the whole history at once (the cache is reused, not rebuilt).</summary>
    [Fact]
    public void AppendingAfterGeneratingContinuesTheSequence()
    {
        var runs = PatchedModels.Generations();
        using var model = Load();
        using var generator = model.CreateGenerator(GreedyFor(5));
        generator.AppendTokens(runs[0].PromptIds);
        while (!generator.IsDone)
        {
            generator.GenerateNextToken();
        }
        generator.AppendTokens(runs[2].PromptIds);
        while (!generator.IsDone)
        {
            generator.GenerateNextToken();
        }
        var history = generator.GetSequence(0).ToArray();
        var turn = history[..^5];
        Assert.Equal(Greedy(model, turn, 5), history[^5..]);
        Assert.Equal(runs[0].GreedyIds[..5], history[runs[0].PromptIds.Length..(runs[0].PromptIds.Length + 5)]);
    }

    [Fact]
    public void AStopTokenEndsTheSequenceAtItsFirstOccurrence()
    {
        var (_, prompt, expected, _) = PatchedModels.Generations()[0];
        var stop = expected[6];
        using var model = Load();
        using var generator = model.CreateGenerator(new GeneratorSettings { MaxNewTokens = expected.Length, StopTokenIds = [stop] });
        generator.AppendTokens(prompt);
        while (!generator.IsDone)
        {
            generator.GenerateNextToken();
        }
        var generated = generator.GetSequence(0).Skip(prompt.Length).ToArray();
        Assert.Equal(expected[..(Array.IndexOf(expected, stop) + 1)], generated);
        Assert.Equal(FinishReason.Stop, generator.GetFinishReason(0));
    }

    [Fact]
    public void TheMaximumLengthEndsTheSequence()
    {
        var (_, prompt, expected, _) = PatchedModels.Generations()[0];
        using var model = Load(options: TestDevice.Options with { MaxLength = prompt.Length + 3 });
        using var generator = model.CreateGenerator(GreedyFor(50));
        generator.AppendTokens(prompt);
        while (!generator.IsDone)
        {
            generator.GenerateNextToken();
        }
        Assert.Equal(expected[..3], generator.GetSequence(0).Skip(prompt.Length));
        Assert.Equal(FinishReason.Length, generator.GetFinishReason(0));
    }

    /// <summary>A quest-patched model runs dense without patching again, and refuses a method its graph lacks the state for.</summary>
    [Fact]
    public void TheMethodCanBeOverriddenWhereTheModelAllows()
    {
        var (_, prompt, expected, _) = PatchedModels.Generations()[2];
        var folder = PatchedModels.TinyLlama("quest", new Dictionary<string, double> { ["budget"] = 2, ["dense_below"] = 0, ["window"] = 1, ["sink"] = 1 });
        using (var model = Model.Load(folder, TestDevice.Options with { Method = "dense" }))
        {
            Assert.Equal(expected, Greedy(model, prompt, expected.Length));
            Assert.All(model.Config.Layers, l => Assert.Equal("dense", l.Method));
        }
        var error = Assert.Throws<ArgumentException>(() => Model.Load(PatchedModels.TinyLlama(), new ModelOptions { Method = "quest" }));
        Assert.Contains("patched with 'dense'", error.Message);
        error = Assert.Throws<ArgumentException>(() => Model.Load(folder, new ModelOptions { MethodParameters = new Dictionary<string, double> { ["page_size"] = 8 } }));
        Assert.Contains("'page_size' cannot be changed", error.Message);
    }

    /// <summary>
    /// A model whose attention concatenates (ONNX Attention with its own cache) runs through the
    /// generator's concat path, and its greedy tokens equal those of ONNX Runtime's own kernels on the
    /// unpatched model recomputing the whole sequence at every step.
    /// </summary>
    [Fact]
    public void AConcatCacheModelEqualsOnnxRuntimeRecomputingEverything()
    {
        var folder = Directory.CreateTempSubdirectory("ortsparse-concat-").FullName;
        var source = Path.Combine(folder, "original.onnx");
        File.WriteAllBytes(source, SampleWithLogits().ToByteArray());
        var result = ModelPatcher.Patch(OnnxModel.Load(source).Proto, new PatchOptions());
        File.WriteAllBytes(Path.Combine(folder, "model.onnx"), result.Model.ToByteArray());
        File.WriteAllText(Path.Combine(folder, "model.ortsparse.json"), RuntimeConfig.ToJson(result, "model.onnx"));
        int[] prompt = [5, 17, 200, 3, 99];
        using var model = Model.Load(folder, TestDevice.Options with { MaxLength = 64 });
        using var reference = new FullRecomputation(source);
        Assert.Equal(reference.Greedy(prompt, 12), Greedy(model, prompt, 12));
    }

    /// <summary>The sample model (embedding and two ONNX Attention layers with a cache) with a seeded lm_head turning its hidden states into logits.</summary>
    private static global::Onnx.ModelProto SampleWithLogits()
    {
        var model = OnnxModel.Load(RepositoryFiles.PathOf("models/sample/model.onnx")).Proto;
        var graph = model.Graph;
        var hidden = graph.Output.First(o => o.Name == "last_hidden_state");
        var width = hidden.Type.TensorType.Shape.Dim[2].DimValue;
        const int Vocabulary = 256;
        var random = new Random(5);
        var head = new global::Onnx.TensorProto { Name = "lm_head.weight", DataType = (int)global::Onnx.TensorProto.Types.DataType.Float };
        head.Dims.Add([width, Vocabulary]);
        head.FloatData.Add(Enumerable.Range(0, (int)width * Vocabulary).Select(_ => (float)(random.NextDouble() * 2 - 1)));
        graph.Initializer.Add(head);
        graph.Node.Add(OnnxBuilder.Node("MatMul", ["last_hidden_state", "lm_head.weight"], ["logits"], name: "lm_head"));
        graph.Output.Remove(hidden);
        graph.Output.Insert(0, OnnxBuilder.TensorValueInfo("logits", global::Onnx.TensorProto.Types.DataType.Float, ["batch", "sequence", Vocabulary]));
        return model;
    }
}
