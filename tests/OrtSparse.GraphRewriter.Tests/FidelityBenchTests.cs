using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using OrtSparse.Cli;
using OrtSparse.Cli.Bench.Fidelity;
using OrtSparse.Runtime.Text;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>
/// bench fidelity on the shipped code model with short contexts: dense perplexity and needle verdicts against ONNX
/// Runtime on the unpatched model, methods that keep every key against dense, needle prompt construction, CLI errors
/// and outputs. Held-out text: this repository's own C# sources.
/// </summary>
[Collection(RunsAlone.Name)]
public sealed class FidelityBenchTests : IDisposable
{
    private static readonly string CodeModel = Path.Combine(CliTests.RepositoryRoot(), "models", "code-model");
    private static readonly string HeldOut = Path.Combine(CliTests.RepositoryRoot(), "graph-rewriter", "OrtSparse.Cli", "Plot");
    private static readonly Lazy<Tokenizer> CodeTokenizer = new(() => Tokenizer.Load(CodeModel));
    private static readonly Lazy<int[]> HeldOutTokens = new(() =>
        HeldOutText.Tokens(CodeTokenizer.Value, HeldOutText.Files([HeldOut]), CodeTokenizer.Value.TokenToId("<|endoftext|>")!.Value));

    private readonly string _scratch = Directory.CreateTempSubdirectory("ortsparse-fidelity-test-").FullName;

    public void Dispose() => Directory.Delete(_scratch, recursive: true);

    private static FidelitySettings Settings(params string[] methods) => new()
    {
        ModelPath = CodeModel,
        TextPaths = [HeldOut],
        Device = TestDevice.Current,
        Threads = 2,
        Context = 300,
        PerplexityWindows = 3,
        PerplexityTokens = 12,
        Batch = 2,
        NeedleLengths = [],
        Methods = methods,
        Budgets = [1.0],
        Parameters = new Dictionary<string, double> { ["dense_below"] = 0 },
        PrefillChunkTokens = 128,
    };

    private static FidelityResult Run(FidelitySettings settings) =>
        TestDevice.SkipDocumentedCudaGaps(() => FidelityBenchmark.Run(settings, TextWriter.Null));

    [Fact]
    public void TheHeldOutStreamIsTheSortedFilesJoinedByEndOfTextAndTheWindowsSpanIt()
    {
        var tokenizer = CodeTokenizer.Value;
        var files = Directory.GetFiles(HeldOut).Order(StringComparer.Ordinal).ToList();
        var expected = files.SelectMany((f, i) => (i == 0 ? [] : new[] { 0 }).Concat(tokenizer.Encode(File.ReadAllText(f)))).ToArray();
        Assert.Equal(expected, HeldOutTokens.Value);

        var windows = HeldOutText.Windows(expected, 5, 1000);
        Assert.Equal(5, windows.Length);
        Assert.Equal(expected[..1000], windows[0]);
        Assert.Equal(expected[^1000..], windows[^1]);
        var step = (expected.Length - 1000) / 4.0;
        for (var i = 0; i < windows.Length; i++)
        {
            var start = (int)Math.Round(i * step, MidpointRounding.AwayFromZero);
            Assert.Equal(expected[start..(start + 1000)], windows[i]);
        }
        Assert.Contains("fewer than one window", Assert.Throws<ArgumentException>(() => HeldOutText.Windows(expected[..10], 1, 11)).Message);
    }

    /// <summary>
    /// Dense (patched, run by the runtime's generator, every scored token a decode step) gives the perplexity of ONNX
    /// Runtime's own kernels on the unpatched model run once over each whole window; and a needle counts as found
    /// exactly when ONNX Runtime's argmax over the prompt and its answer is every answer token.
    /// </summary>
    [Fact]
    public void DenseMatchesOnnxRuntimeOnTheUnpatchedModel()
    {
        var settings = Settings() with { Methods = ["topk"], NeedleLengths = [200, 300], NeedleDepths = [20, 80], NeedleTrials = 1 };
        var result = Run(settings);
        var dense = result.Rows[0];
        Assert.Equal("dense", dense.Method);

        using var options = new SessionOptions { IntraOpNumThreads = 2 };
        using var session = OrtSparse.Runtime.SessionFactory.CreateSession(Path.Combine(CodeModel, "model.onnx"), options);
        var nll = new List<double>();
        foreach (var window in result.Windows)
        {
            var logits = ReferenceLogits(session, window);
            for (var position = settings.Context - settings.PerplexityTokens; position < settings.Context; position++)
            {
                nll.Add(-LogSoftmax(logits[position - 1], window[position]));
            }
        }
        Assert.Equal(settings.PerplexityWindows * settings.PerplexityTokens, nll.Count);
        // fp32 logits (|logit| ~ 10, eps 1.2e-7) summed in another order differ by ~1e-6 each; the mean NLL by no more (1e-6 seen on the CPU).
        Assert.Equal(nll.Average(), Math.Log(dense.Perplexity), 1e-5);

        Assert.Equal(4, result.Needles.Count);
        foreach (var needle in result.Needles)
        {
            var sequence = needle.Prompt.Concat(needle.Answer).ToArray();
            var logits = ReferenceLogits(session, sequence);
            var argmax = needle.Answer.Select((_, i) => ArgMax(logits[needle.Length - 1 + i])).ToList();
            var found = argmax.SequenceEqual(needle.Answer) ? 1.0 : 0.0;
            Assert.Equal(found, dense.NeedleByLengthDepth[(needle.Length, needle.DepthPercent)]);
        }
    }

    /// <summary>topk whose budget covers the whole middle attends every key: dense's perplexity, dense's argmax everywhere.</summary>
    [Fact]
    public void TopkOverTheWholeCacheIsDense()
    {
        var result = Run(Settings("topk"));
        var (dense, topk) = (result.Rows[0], result.Rows[1]);
        Assert.Equal(("topk", 1.0), (topk.Method, topk.Budget));
        // The same keys in the same fp32 arithmetic (identical on the CPU); a GPU kernel may sum them in another order.
        Assert.Equal(Math.Log(dense.Perplexity), Math.Log(topk.Perplexity), 1e-6);
        Assert.Equal(1.0, topk.Top1Agreement);
        Assert.Equal(1.0, dense.Top1Agreement);
    }

    /// <summary>
    /// --dense-layers keeps the first layers dense: with all 4 of the code model's layers dense, streaming at a tiny
    /// window scores exactly as dense and recalls everything; with none, the same config does not.
    /// </summary>
    [Fact]
    public void DenseLayersAreDense()
    {
        var settings = Settings("streaming") with { Budgets = [1.0 / 64], Parameters = new Dictionary<string, double> { ["dense_below"] = 0, ["window"] = 4 } };
        var allDense = Run(settings with { DenseLayers = 4 });
        Assert.Equal(Math.Log(allDense.Rows[0].Perplexity), Math.Log(allDense.Rows[1].Perplexity), 1e-6);
        Assert.All(allDense.Rows[1].LayerRecall!, recall => Assert.Equal(1.0, recall));
        var sparse = Run(settings);
        Assert.NotEqual(sparse.Rows[0].Perplexity, sparse.Rows[1].Perplexity);
        Assert.True(sparse.Rows[1].LayerRecall!.Min() < 1, "streaming with a 4-token window misses attention mass");
    }

    /// <summary>A layer-recall measure is asked once per sparse config, with the config the model was patched with; its values are reported.</summary>
    [Fact]
    public void ALayerRecallMeasureIsAskedPerConfigAndReportedPerLayer()
    {
        var asked = new List<MethodConfig>();
        var settings = Settings("topk", "streaming") with { Budgets = [1.0, 0.5] };
        var result = TestDevice.SkipDocumentedCudaGaps(() => FidelityBenchmark.Run(settings, TextWriter.Null, config =>
        {
            asked.Add(config);
            return [0.5, 1.0, 0.25, 0.75];
        }));
        Assert.Equal(result.Rows.Skip(1).Select(r => r.Config), asked);
        Assert.Equal(["topk", "topk", "streaming", "streaming"], asked.Select(c => c.Method));
        Assert.Equal([1.0, 0.5], asked.Take(2).Select(c => c.Parameters["budget"]));
        Assert.Null(result.Rows[0].LayerRecall);
        Assert.All(result.Rows.Skip(1), r => Assert.Equal(0.625, r.MeanRecall));

        var output = Path.Combine(_scratch, "recall");
        FidelityReport.Write(output, result, "ortsparse bench fidelity (test)");
        var csv = File.ReadAllLines(Path.Combine(output, "fidelity.csv"));
        Assert.EndsWith(",recall_mean,recall_layer0,recall_layer1,recall_layer2,recall_layer3", csv[0]);
        Assert.EndsWith(",,", csv[1]);
        Assert.EndsWith(",0.625,0.5,1,0.25,0.75", csv[2]);
        Assert.Contains("| topk | 1/2 | 0.625 | 0.500 | 1.000 | 0.250 | 0.750 |", File.ReadAllText(Path.Combine(output, "fidelity.md")));
        Assert.True(File.Exists(Path.Combine(output, "fidelity-recall.png")));
    }

    /// <summary>streaming with a window of a few tokens at a context of 600 loses the far context: the benchmark tells it from dense.</summary>
    [Fact]
    public void StreamingWithATinyWindowDisagreesWithDense()
    {
        var settings = Settings("streaming") with
        {
            Context = 600,
            PerplexityTokens = 16,
            Budgets = [1.0 / 64],
            Parameters = new Dictionary<string, double> { ["dense_below"] = 0, ["sink"] = 1, ["window"] = 2 },
        };
        var result = Run(settings);
        var streaming = result.Rows[1];
        Assert.Equal(2 + (int)Math.Ceiling(600 / 64.0), (int)streaming.Config.Parameters["window"]);
        Assert.False(streaming.Config.Parameters.ContainsKey("budget"));
        Assert.InRange(streaming.Top1Agreement, 0, 0.999);
        Assert.NotEqual(result.Rows[0].Perplexity, streaming.Perplexity);
    }

    [Theory]
    [InlineData(200, 10, 0)]
    [InlineData(200, 50, 1)]
    [InlineData(512, 90, 0)]
    [InlineData(1024, 30, 3)]
    [InlineData(1024, 0, 0)]
    [InlineData(1024, 100, 2)]
    public void ANeedlePromptHasTheLengthTheDepthAndAnAnswerThatSpellsTheSecret(int length, int depth, int trial)
    {
        var tokenizer = CodeTokenizer.Value;
        var prompts = new NeedlePrompts(tokenizer, HeldOutTokens.Value);
        var needle = prompts.Build(length, depth, trial, seed: 7);

        Assert.Equal(length, needle.Prompt.Length);
        Assert.Matches("^[0-9a-f]{8}$", needle.Secret);
        Assert.Equal(needle.Secret, tokenizer.Decode(needle.Answer));
        var line = tokenizer.Encode($"SECRET_TOKEN = \"{needle.Secret}\"\n");
        Assert.Equal(line, needle.Prompt[needle.NeedleStart..(needle.NeedleStart + line.Length)]);
        var question = tokenizer.Encode("SECRET_TOKEN = \"");
        Assert.Equal(question.Concat(needle.Answer), line.Take(question.Length + needle.Answer.Length));
        Assert.EndsWith("\nSECRET_TOKEN = \"", tokenizer.Decode(needle.Prompt));
        Assert.Equal(2, CountOf(tokenizer.Decode(needle.Prompt), "SECRET_TOKEN"));

        // The needle starts a line, and no other line starts between it and the requested depth of the haystack.
        Assert.True(needle.NeedleStart == 0 || tokenizer.Decode(needle.Prompt[..needle.NeedleStart]).EndsWith('\n'));
        var haystack = needle.Prompt[..needle.NeedleStart].Concat(needle.Prompt[(needle.NeedleStart + line.Length)..^(question.Length + 1)]).ToArray();
        var target = (int)Math.Round(depth / 100.0 * haystack.Length);
        var (from, to) = (Math.Min(target, needle.NeedleStart), Math.Max(target, needle.NeedleStart));
        var between = Enumerable.Range(from + 1, Math.Max(0, to - from - 1)).Count(i => tokenizer.Decode([haystack[i - 1]]).EndsWith('\n'));
        Assert.Equal(0, between);

        var again = prompts.Build(length, depth, trial, seed: 7);
        Assert.Equal((needle.Secret, needle.NeedleStart), (again.Secret, again.NeedleStart));
        Assert.Equal(needle.Prompt, again.Prompt);
        Assert.Equal(needle.Answer, again.Answer);
        var other = prompts.Build(length, depth, trial + 1, seed: 7);
        Assert.False(other.Prompt.SequenceEqual(needle.Prompt));
    }

    [Fact]
    public void ANeedleLengthWithoutRoomForAHaystackIsRefused()
    {
        var prompts = new NeedlePrompts(CodeTokenizer.Value, HeldOutTokens.Value);
        Assert.Contains("tokens of haystack", Assert.Throws<ArgumentException>(() => prompts.Build(20, 50, 0, 0)).Message);
        var shortText = new NeedlePrompts(CodeTokenizer.Value, HeldOutTokens.Value[..500]);
        Assert.Contains("fewer than the", Assert.Throws<ArgumentException>(() => shortText.Build(1024, 50, 0, 0)).Message);
    }

    /// <summary>A needle is found only when the argmax is the answer at every position.</summary>
    [Fact]
    public void ANeedleIsFoundOnlyWhenEveryAnswerTokenIsTheArgmax()
    {
        var needle = new NeedlePrompts(CodeTokenizer.Value, HeldOutTokens.Value).Build(256, 50, 0, seed: 1);
        Assert.True(needle.IsFound(needle.Answer));
        for (var i = 0; i < needle.Answer.Length; i++)
        {
            var argmax = needle.Answer.ToArray();
            argmax[i] = (argmax[i] + 1) % CodeTokenizer.Value.VocabularySize;
            Assert.False(needle.IsFound(argmax), $"answer token {i} wrong");
        }
        Assert.Throws<ArgumentException>(() => needle.IsFound(needle.Answer[..^1]));
    }

    /// <summary>The scored token: argmax (first on ties) and log-softmax, against a plain evaluation.</summary>
    [Fact]
    public void AScoredTokenIsTheArgmaxAndTheLogSoftmax()
    {
        float[] logits = [1.5f, -2f, 3.25f, 3.25f, 0f];
        var scored = ScoredToken.Of(logits, 4);
        Assert.Equal(2, scored.Argmax);
        var denominator = logits.Sum(l => Math.Exp(l));
        Assert.Equal(Math.Log(1 / denominator), scored.LogProbability, 12);
        Assert.Throws<ArgumentOutOfRangeException>(() => ScoredToken.Of(logits, 5));
    }

    [Theory]
    [InlineData("--methods", "bogus", "unknown method 'bogus'")]
    [InlineData("--methods", "block", "does not select keys at decode steps")]
    [InlineData("--budgets", "0", "outside (0, 1]")]
    [InlineData("--budgets", "1/0", "is not a fraction")]
    [InlineData("--budgets", "3/2", "outside (0, 1]")]
    [InlineData("--budgets", "1/x", "is not a fraction")]
    [InlineData("--budgets", "half", "is not a number")]
    [InlineData("--needle-depths", "120", "--needle-depths: '120' is not an integer from 0 to 100")]
    [InlineData("--ppl-tokens", "300", "must exceed ppl tokens")]
    [InlineData("--budget", "0.5", "unknown option --budget")]
    [InlineData("--gamma", "0.9", "--gamma: none of the methods measured (topk, streaming, quest, loki, saap, hash) takes it")]
    public void BadOptionsAreNamed(string option, string value, string message)
    {
        var (code, _, error) = CliTests.Cli("bench", "fidelity", CodeModel, "--text", HeldOut, "--context", "256", "--ppl-tokens", "8", option, value);
        Assert.Equal(CliApp.Usage, code);
        Assert.Contains(message, error);
    }

    [Fact]
    public void MissingTextModelOrCalibrationAreNamed()
    {
        var (code, _, error) = CliTests.Cli("bench", "fidelity", CodeModel);
        Assert.Equal(CliApp.Usage, code);
        Assert.Contains("needs held-out text: --text PATH", error);

        var tiny = Path.Combine(CliTests.RepositoryRoot(), "models", "tiny-llama");
        (code, _, error) = CliTests.Cli("bench", "fidelity", tiny, "--text", HeldOut, "--methods", "topk,loki");
        Assert.Equal(CliApp.Usage, code);
        Assert.Contains("method 'loki' needs the model's calibration: pass --calibration CALIB", error);

        (code, _, error) = CliTests.Cli("bench", "fidelity", CodeModel, "--text", Path.Combine(_scratch, "nothing-here"), "--methods", "topk", "--context", "64", "--ppl-tokens", "4");
        Assert.Equal(CliApp.Failed, code);
        Assert.Contains("nothing-here is neither a file nor a directory", error);

        (code, _, error) = CliTests.Cli("bench", "fidelity", _scratch, "--text", HeldOut, "--methods", "topk");
        Assert.Equal(CliApp.Failed, code);
        Assert.Contains("model.onnx", error);
    }

    /// <summary>--out writes the CSV (a row per config), the Markdown (the command line, dense first) and PNG plots.</summary>
    [Fact]
    public void OutWritesTheCsvTheMarkdownAndThePlots()
    {
        var output = Path.Combine(_scratch, "fidelity");
        var (code, stdout, error) = TestDevice.SkipDocumentedCudaGaps(() => CliTests.Cli(
            ["bench", "fidelity", CodeModel, "--text", HeldOut, "--context", "128", "--ppl-windows", "2", "--ppl-tokens", "4", "--needle-lengths", "128,256",
             "--needle-depths", "50", "--needle-trials", "1", "--methods", "topk,streaming", "--budgets", "1/4,0.125", "--dense-below", "0", "--threads", "2",
             "--out", output, .. TestDevice.CliArgs]));
        Assert.True(code == CliApp.Ok, error);
        Assert.Contains("streaming ignores the budget", stdout);

        var csv = File.ReadAllLines(Path.Combine(output, "fidelity.csv"));
        Assert.Equal("method,budget,parameters,perplexity,top1_agreement,needle_128,needle_256,needle_128_d50,needle_256_d50,recall_mean,recall_layer0,recall_layer1,recall_layer2,recall_layer3", csv[0]);
        Assert.Equal(["dense", "topk", "topk", "streaming", "streaming"], csv.Skip(1).Select(l => l.Split(',')[0]));
        Assert.All(csv.Skip(1), l => Assert.True(double.Parse(l.Split(',')[3], CultureInfo.InvariantCulture) > 1));

        var markdown = File.ReadAllText(Path.Combine(output, "fidelity.md"));
        Assert.Contains("ortsparse bench fidelity " + CodeModel, markdown);
        Assert.Contains("| method | budget | perplexity | vs dense | top-1 | needle@128 | needle@256 | recall |", markdown);
        Assert.Contains("| dense | - |", markdown.Split('\n').First(l => l.StartsWith("| dense", StringComparison.Ordinal)));
        Assert.True(markdown.IndexOf("| dense |", StringComparison.Ordinal) < markdown.IndexOf("| topk | 1/4 |", StringComparison.Ordinal));
        Assert.Contains("| streaming | 1/8 |", markdown);

        byte[] signature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];
        foreach (var plot in new[] { "fidelity-perplexity.png", "fidelity-needle.png", "fidelity-top1.png", "fidelity-recall.png" })
        {
            Assert.Equal(signature, File.ReadAllBytes(Path.Combine(output, plot))[..8]);
            Assert.Contains($"]({plot})", markdown);
        }
        Assert.Empty(Directory.GetFiles(output, "*.tmp", SearchOption.AllDirectories));
    }

    private static float[][] ReferenceLogits(InferenceSession session, int[] tokens)
    {
        using var ids = OrtValue.CreateTensorValueFromMemory(tokens.Select(t => (long)t).ToArray(), [1, tokens.Length]);
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, ["input_ids"], [ids], ["logits"]);
        var flat = outputs[0].GetTensorDataAsSpan<float>().ToArray();
        var vocabulary = flat.Length / tokens.Length;
        return Enumerable.Range(0, tokens.Length).Select(p => flat[(p * vocabulary)..((p + 1) * vocabulary)]).ToArray();
    }

    private static double LogSoftmax(float[] logits, int token)
    {
        var max = logits.Max();
        return logits[token] - max - Math.Log(logits.Sum(l => Math.Exp(l - max)));
    }

    private static int ArgMax(float[] logits) => Array.IndexOf(logits, logits.Max());

    private static int CountOf(string text, string part) => (text.Length - text.Replace(part, "", StringComparison.Ordinal).Length) / part.Length;
}
