using OrtSparse.Cli.Bench.Generate;
using OrtSparse.Onnx;
using OrtSparse.Runtime;
using DataType = Onnx.TensorProto.Types.DataType;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>
/// ONNX Runtime GenAI, the baseline of bench generate, on a decoder written by
/// <see cref="DecoderModelWriter"/>: its greedy generation (shared KV buffers, one token per step)
/// equals greedy decoding by full recomputation in plain ONNX Runtime sessions of the same process,
/// which also shows that GenAI and our sessions share one ONNX Runtime without trouble.
/// </summary>
public sealed class GenAiTests : IClassFixture<GenAiTests.TinyDecoder>
{
    /// <summary>A tiny fp32 decoder written once for the class.</summary>
    public sealed class TinyDecoder : IDisposable
    {
        public DecoderShape Shape { get; } = new() { Layers = 2, Hidden = 64, Heads = 4, KvHeads = 2, HeadSize = 16, Intermediate = 96, Vocab = 200, MaxLength = 48, Seed = 3 };

        public string Scratch { get; } = Directory.CreateTempSubdirectory("ortsparse-genai-").FullName;

        public string Folder { get; }

        public TinyDecoder() => Folder = DecoderModelWriter.Write(Shape, Path.Combine(Scratch, "decoder"));

        public void Dispose() => Directory.Delete(Scratch, recursive: true);
    }

    private const int NewTokens = 16;
    private readonly TinyDecoder _decoder;

    public GenAiTests(TinyDecoder decoder) => _decoder = decoder;

    [Theory]
    [InlineData(5, 1)]
    [InlineData(5, 2)]
    [InlineData(13, 1)]
    [InlineData(13, 2)]
    public void GreedyGenerationEqualsFullRecomputation(int promptLength, int batch)
    {
        var prompts = DecoderRuns.Prompts(batch, promptLength, _decoder.Shape.Vocab, seed: promptLength * 10 + batch);

        using var engine = GenAiEngine.Open(_decoder.Folder, new GenAiEngineOptions { IntraOpThreads = 2 });
        var generated = engine.Generate(prompts, NewTokens);

        var model = OnnxModel.Load(Path.Combine(_decoder.Folder, DecoderModelWriter.ModelFileName)).Proto;
        var expected = DecoderRuns.GreedyByRecomputation(model, _decoder.Shape, prompts, NewTokens, withOrtSparse: false);
        Assert.Equal(expected, generated.Tokens);
        Assert.Equal(NewTokens - 1, generated.DecodeSteps);
        Assert.True(generated.TimeToFirstToken > TimeSpan.Zero && generated.DecodeTime > TimeSpan.Zero);
        Assert.True(generated.DecodeTokensPerSecond > 0);
    }

    [Fact]
    public void GenerationIsRepeatableWithOneEngine()
    {
        var prompts = DecoderRuns.Prompts(2, 7, _decoder.Shape.Vocab, seed: 5);
        using var engine = GenAiEngine.Open(_decoder.Folder, new GenAiEngineOptions { IntraOpThreads = 2 });
        var first = engine.Generate(prompts, 8);
        var second = engine.Generate(prompts, 8);
        Assert.Equal(first.Tokens, second.Tokens);
        Assert.Single(engine.Generate([prompts[0]], 1).Tokens.Single());
    }

    [Fact]
    public void EngineReadsTheLimitsOfItsConfig()
    {
        using var engine = GenAiEngine.Open(_decoder.Folder);
        Assert.Equal((_decoder.Shape.Vocab, _decoder.Shape.MaxLength), (engine.Vocab, engine.ContextLength));
    }

    public static TheoryData<int[][], int, string> BadRequests() => new()
    {
        { [], 4, "at least one prompt" },
        { [[3, 4, 5], [3, 4]], 4, "prompt 1 has 2 tokens; every prompt needs the same positive length (3)" },
        { [[3, 200, 5]], 4, "prompt 0, token 1: id 200 is outside the vocabulary [0, 200)" },
        { [[3, -1]], 4, "id -1 is outside the vocabulary" },
        { [[3, 4, 5]], 46, "prompt length (3) + new tokens (46) exceeds the model's context length (48)" },
        { [[3, 4, 5]], 0, "maxNewTokens" },
    };

    [Theory]
    [MemberData(nameof(BadRequests))]
    public void BadRequestsAreRefusedWithTheReason(int[][] prompts, int newTokens, string reason)
    {
        using var engine = GenAiEngine.Open(_decoder.Folder);
        var error = Assert.ThrowsAny<ArgumentException>(() => engine.Generate(prompts, newTokens));
        Assert.Contains(reason, error.Message);
    }

    [Fact]
    public void FolderWithoutConfigIsRefused()
    {
        var error = Assert.Throws<FileNotFoundException>(() => GenAiEngine.Open(_decoder.Scratch));
        Assert.Contains("has no genai_config.json", error.Message);
    }

    /// <summary>
    /// With ORTSPARSE_TEST_DEVICE=cuda and GenAI's CUDA add-on installed: GenAI on CUDA (fp16, where
    /// GroupQueryAttention runs there) picks at every step a token whose logit, recomputed on the CPU
    /// over GenAI's own sequence, is within rounding of the best: fp16 kernels may break a near tie
    /// either way, a wrong cache or position picks tokens far from the best.
    /// </summary>
    [Fact]
    public void CudaGenerationPicksTheBestTokensOfTheCpuReference()
    {
        Assert.SkipUnless(TestDevice.IsCuda, "runs with ORTSPARSE_TEST_DEVICE=cuda");
        Assert.SkipUnless(File.Exists(Path.Combine(AppContext.BaseDirectory, GenAiEngine.CudaAddOnFileName)),
            $"GenAI's CUDA add-on {GenAiEngine.CudaAddOnFileName} is not beside libonnxruntime-genai.so");
        var shape = _decoder.Shape with { HeadSize = 64, ElementType = DataType.Float16 };
        var folder = DecoderModelWriter.Write(shape, Path.Combine(_decoder.Scratch, "decoder-fp16"));
        var prompts = DecoderRuns.Prompts(2, 11, shape.Vocab, seed: 4);

        using var engine = GenAiEngine.Open(folder, new GenAiEngineOptions { Device = ExecutionDevice.Cuda });
        var generated = engine.Generate(prompts, NewTokens);

        // Rounding moves fp16 logits (spread 4) by a few hundredths; 0.1 is well below a real miss.
        const double margin = 0.1;
        var sequences = prompts.Zip(generated.Tokens, (p, g) => p.Concat(g).Select(t => (long)t).ToArray()).ToArray();
        var (logitShape, logits) = DecoderRuns.Step(DecoderModelWriter.Build(shape), shape, sequences, null, withOrtSparse: false)[DecoderModelWriter.Logits];
        long length = logitShape[1], vocab = logitShape[2];
        for (var b = 0; b < sequences.Length; b++)
        {
            for (var t = 0; t < NewTokens; t++)
            {
                var row = (b * length + prompts[b].Length - 1 + t) * vocab;
                var best = Enumerable.Range(0, (int)vocab).Where(v => v != DecoderModelWriter.EndOfSequenceToken).Max(v => logits[row + v]);
                var chosen = logits[row + generated.Tokens[b][t]];
                Assert.True(chosen >= best - margin, $"sequence {b}, new token {t}: GenAI chose {generated.Tokens[b][t]} (logit {chosen:g4}), the best logit is {best:g4}");
            }
        }
    }

    [Fact]
    public void CudaWithoutGenAisCudaAddOnSaysWhatIsMissing()
    {
        Assert.SkipWhen(File.Exists(Path.Combine(AppContext.BaseDirectory, GenAiEngine.CudaAddOnFileName)), "GenAI's CUDA add-on is installed here");
        var error = Assert.Throws<FileNotFoundException>(() => GenAiEngine.Open(_decoder.Folder, new GenAiEngineOptions { Device = ExecutionDevice.Cuda }));
        Assert.Contains(GenAiEngine.CudaAddOnFileName, error.Message);
    }
}
