using Onnx;
using OrtSparse.Calibration;
using OrtSparse.Cli.Bench.Fidelity;
using OrtSparse.Cli.Calibrate;
using OrtSparse.Onnx;
using OrtSparse.Runtime;
using OrtSparse.Runtime.Text;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>
/// Per-layer recall (<see cref="LayerRecall"/>) on the shipped code model and one held-out stretch of
/// code: dense and a full topk budget recall everything; streaming and topk recall exactly the mass
/// their selection rule (docs/ops.md) picks, computed here from the captured activations with this
/// file's own rotary embedding (Llama's, θ = 10000) and softmax; the learned methods recall something
/// and at least as much as streaming reading as many keys. With ORTSPARSE_TEST_DEVICE=cuda the steps
/// run on the CUDA provider.
/// </summary>
[Collection(RunsAlone.Name)]
public sealed class LayerRecallTests : IClassFixture<LayerRecallTests.CodeModelCapture>
{
    private const int Tokens = 1024;
    private const int Queries = 6;
    private const int DenseBelow = 256;
    private const int Sink = 4;
    private const int Window = 64;
    private const double Budget = 1.0 / 16;

    /// <summary>The code model and its activations on one sequence of <see cref="Tokens"/> tokens, shared by the tests.</summary>
    public sealed class CodeModelCapture
    {
        public ModelProto Model { get; } = OnnxModel.Load(Path.Combine(CodeModelFolder, "model.onnx")).Proto;

        public CalibrationData Calibration { get; } = CalibrationData.Load(Path.Combine(CodeModelFolder, "calibration.onnx"));

        public IReadOnlyList<SiteActivations> Captured { get; }

        public CodeModelCapture()
        {
            // Code the model did not train on: this repository's C++ sources.
            var text = string.Concat(Directory.GetFiles(Path.Combine(CliTests.RepositoryRoot(), "ops", "attention", "cpu"), "*.cc").Order().Select(File.ReadAllText));
            using var tokenizer = Tokenizer.Load(CodeModelFolder);
            var tokens = tokenizer.Encode(text);
            Assert.True(tokens.Length >= Tokens, $"{tokens.Length} tokens of text");
            Captured = ActivationCapture.Run(Model, [tokens.Take(Tokens).Select(t => (long)t).ToArray()], withValues: true);
        }
    }

    private readonly CodeModelCapture _code;

    public LayerRecallTests(CodeModelCapture code) => _code = code;

    private static string CodeModelFolder => Path.Combine(CliTests.RepositoryRoot(), "models", "code-model");

    /// <summary>Keys a sparse method reads at <see cref="Budget"/> on the last position (sink and window aside), added to streaming's window.</summary>
    private static int SameKeysRead => Window + (int)Math.Ceiling(Budget * Tokens);

    private static string Format(IEnumerable<double> recall) => string.Join(", ", recall.Select(r => r.ToString("F4")));

    private static RecallOptions Options => new(Queries, new SessionConfig { Device = TestDevice.Current, IntraOpThreads = 2 });

    private static MethodConfig Method(string name, params (string Name, double Value)[] parameters) =>
        new() { Method = name, Parameters = parameters.ToDictionary(p => p.Name, p => p.Value) };

    private static (string, double)[] Sparse(double budget) => [("budget", budget), ("sink", Sink), ("window", Window), ("dense_below", DenseBelow)];

    private IReadOnlyList<double> Measure(MethodConfig method) =>
        TestDevice.SkipDocumentedCudaGaps(() => LayerRecall.Measure(_code.Model, _code.Captured, method, _code.Calibration, Options));

    [Fact]
    public void DenseRecallsEverything()
    {
        var recall = Measure(Method("dense"));
        Assert.Equal(4, recall.Count);
        Assert.All(recall, r => Assert.Equal(1.0, r, 1e-9));
    }

    [Fact]
    public void TopkWithTheWholeCacheAsBudgetRecallsEverything()
    {
        Assert.All(Measure(Method("topk", Sparse(1.0))), r => Assert.Equal(1.0, r, 1e-9));
    }

    /// <summary>Streaming attends the sink and the window: its recall is their exact softmax mass.</summary>
    [Theory]
    [InlineData(16)]
    [InlineData(64)]
    public void StreamingRecallIsTheMassOfSinkAndWindow(int window)
    {
        var recall = Measure(Method("streaming", ("sink", Sink), ("window", window), ("dense_below", DenseBelow)));
        for (var layer = 0; layer < recall.Count; layer++)
        {
            var expected = ExpectedRecall(layer, (_, n, _) => Enumerable.Range(0, n).Where(j => j < Sink || j >= n - window).ToHashSet());
            Assert.True(recall[layer] < 1, $"layer {layer}: streaming recall {recall[layer]}");
            Assert.True(Math.Abs(recall[layer] - expected) < 1e-6, $"layer {layer}: recall {recall[layer]}, sink ∪ window mass {expected}");
        }
    }

    /// <summary>
    /// topk attends sink, window and the k middle keys of highest max-over-the-group score: the mass of
    /// exactly those keys. Post-rotary scores are needed to pick them, so this checks the rotary handling
    /// and that the prefill left the cache as the decode steps read it.
    /// </summary>
    [Theory]
    [InlineData(1.0 / 16)]
    [InlineData(0.2)]
    [InlineData(40.0)]
    public void TopkRecallIsTheMassOfTheExactTopKeys(double budget)
    {
        var recall = Measure(Method("topk", Sparse(budget)));
        for (var layer = 0; layer < recall.Count; layer++)
        {
            var l = layer;
            var expected = ExpectedRecall(layer, (position, n, kvHead) =>
            {
                var middle = Enumerable.Range(Sink, n - Window - Sink);
                var k = Math.Min(budget <= 1 ? (int)Math.Ceiling(budget * n) : (int)budget, n - Window - Sink);
                var groupScores = middle.Select(j => (Key: j, Score: GroupMaxScore(l, kvHead, position, j))).ToList();
                var picked = groupScores.OrderByDescending(s => s.Score).ThenBy(s => s.Key).Take(k).Select(s => s.Key);
                return Enumerable.Range(0, Sink).Concat(Enumerable.Range(n - Window, Window)).Concat(picked).ToHashSet();
            });
            Assert.True(recall[layer] < 1 - 1e-6, $"layer {layer}: topk recall {recall[layer]} at budget {budget}");
            Assert.True(Math.Abs(recall[layer] - expected) < 1e-5, $"layer {layer}: recall {recall[layer]}, exact top-k mass {expected}");
        }
    }

    /// <summary>
    /// quest ranks pages by the bound scale·Σ_d max(q_d·min_d, q_d·max_d) of their keys' element-wise
    /// min and max (max over the group's heads) and attends the middle keys of the top pages until they
    /// hold k: the mass of exactly those keys. The page summaries come from the method state that the
    /// prefill built and each decode step extended in place, so this checks the state's wiring.
    /// </summary>
    [Fact]
    public void QuestRecallIsTheMassOfTheTopPagesByBound()
    {
        const int pageSize = 16;
        var recall = Measure(Method("quest", [.. Sparse(Budget), ("page_size", pageSize)]));
        for (var layer = 0; layer < recall.Count; layer++)
        {
            var l = layer;
            var site = _code.Captured[layer];
            var (d, group) = (site.HeadDim, site.Queries.Length / site.Keys.Length);
            var expected = ExpectedRecall(layer, (position, n, kvHead) =>
            {
                var (middleBegin, middleEnd) = (Sink, n - Window);
                var k = (int)Math.Ceiling(Budget * n);
                var queries = Enumerable.Range(kvHead * group, group).Select(h => RotatedQuery(l, h, position)).ToList();
                var pages = Enumerable.Range(middleBegin / pageSize, (middleEnd - 1) / pageSize - middleBegin / pageSize + 1).Select(page =>
                {
                    var keys = Enumerable.Range(page * pageSize, Math.Min(pageSize, n - page * pageSize)).Select(j => RotatedKey(l, kvHead, j)).ToList();
                    var bound = queries.Max(q => Enumerable.Range(0, d).Sum(i => Math.Max(q[i] * keys.Min(key => key[i]), q[i] * keys.Max(key => key[i]))) / Math.Sqrt(d));
                    return (Page: page, Bound: bound);
                });
                var kept = Enumerable.Range(0, Sink).Concat(Enumerable.Range(n - Window, Window)).ToHashSet();
                var picked = 0;
                foreach (var (page, _) in pages.OrderByDescending(p => p.Bound).ThenBy(p => p.Page).TakeWhile(_ => picked < k))
                {
                    foreach (var j in Enumerable.Range(page * pageSize, pageSize).Where(j => j >= middleBegin && j < middleEnd))
                    {
                        kept.Add(j);
                        picked++;
                    }
                }
                return kept;
            });
            Assert.True(recall[layer] < 1 - 1e-6, $"layer {layer}: quest recall {recall[layer]}");
            Assert.True(Math.Abs(recall[layer] - expected) < 1e-5, $"layer {layer}: recall {recall[layer]}, mass of the top pages {expected}");
        }
    }

    /// <summary>
    /// The trained model attends by content: the exact top-k keys hold more mass than streaming holds
    /// reading as many keys (sink and a window longer by k).
    /// </summary>
    [Fact]
    public void TopkRecallsMoreThanStreamingReadingAsManyKeys()
    {
        var topk = Measure(Method("topk", Sparse(Budget)));
        var streaming = Measure(Method("streaming", ("sink", Sink), ("window", SameKeysRead), ("dense_below", DenseBelow)));
        Assert.True(topk.Average() > streaming.Average() + 0.01, $"topk [{Format(topk)}], streaming with window {SameKeysRead} [{Format(streaming)}]");
    }

    /// <summary>
    /// A method that ranks the middle keys attends sink ∪ window ∪ its picks: it recalls something, and at
    /// least what streaming recalls from the same sink and window. On this model the methods do NOT all
    /// beat streaming reading as many keys (window longer by k): at T = 1024, budget 1/16, the mean over
    /// layers is 0.745 (quest), 0.775 (saap), 0.757 (hash) against 0.794, and loki's is above it; at
    /// T = 2048 and 4096 all four are below it (0.74–0.80 against 0.785 and 0.812), while exact top-k is
    /// well above it: the ranking methods miss keys that matter, which is reported, not tested.
    /// </summary>
    [Theory]
    [InlineData("quest")]
    [InlineData("loki")]
    [InlineData("saap")]
    [InlineData("hash")]
    public void SelectingMethodsRecallAtLeastStreamingWithTheSameSinkAndWindow(string method)
    {
        var recall = Measure(Method(method, Sparse(Budget)));
        var streaming = Measure(Method("streaming", ("sink", Sink), ("window", Window), ("dense_below", DenseBelow)));
        for (var layer = 0; layer < recall.Count; layer++)
        {
            Assert.InRange(recall[layer], 1e-3, 1 + 1e-9);
            Assert.True(recall[layer] >= streaming[layer] - 1e-9, $"layer {layer}: {method} recall {recall[layer]} < streaming's {streaming[layer]}");
        }
        Assert.True(recall.Average() > streaming.Average() + 0.01, $"{method} [{Format(recall)}] hardly above streaming [{Format(streaming)}]");
    }

    [Fact]
    public void ActivationsOfAnotherModelAreRejected()
    {
        var tiny = OnnxModel.Load(Path.Combine(CliTests.RepositoryRoot(), "models", "corpus", "llama-eager-opset18", "model.onnx")).Proto;
        var error = Assert.Throws<InvalidDataException>(() => LayerRecall.Measure(tiny, _code.Captured, Method("dense"), null, Options));
        Assert.Contains("the captured activations hold 4 attention layer(s) but the model has 2", error.Message);

        var tinyCapture = ActivationCapture.Run(tiny, [Enumerable.Range(0, 40).Select(t => (long)(t * 7 % 128)).ToArray()], withValues: true);
        var twoOfFour = _code.Captured.Take(2).ToList();
        error = Assert.Throws<InvalidDataException>(() => LayerRecall.Measure(tiny, twoOfFour, Method("dense"), null, Options));
        Assert.Contains("captured layer 0 ('node_matmul_2', 4/2 heads of 64) is not the model's layer 0 ('node_matmul_2', 4/2 heads of 8)", error.Message);

        error = Assert.Throws<InvalidDataException>(() => LayerRecall.Measure(_code.Model, _code.Captured.Take(3).ToList(), Method("dense"), null, Options));
        Assert.Contains("hold 3 attention layer(s) but the model has 4", error.Message);

        error = Assert.Throws<InvalidDataException>(() => LayerRecall.Measure(tiny, tinyCapture, Method("dense"), null, Options with { Queries = 40 }));
        Assert.Contains("Queries (40) must be at least 1 and less than the captured sequence's 40 tokens", error.Message);

        var withoutValues = ActivationCapture.Run(tiny, [[1, 2, 3, 4]]);
        error = Assert.Throws<InvalidDataException>(() => LayerRecall.Measure(tiny, withoutValues, Method("dense"), null, Options with { Queries = 1 }));
        Assert.Contains("captured layer 0 has no values", error.Message);

        var twoSequences = ActivationCapture.Run(tiny, [[1, 2, 3], [4, 5, 6]], withValues: true);
        error = Assert.Throws<InvalidDataException>(() => LayerRecall.Measure(tiny, twoSequences, Method("dense"), null, Options with { Queries = 1 }));
        Assert.Contains("several sequences (position 3 sees keys [3, 4))", error.Message);
    }

    /// <summary>
    /// The mean over the measured positions and query heads of the exact softmax mass of the keys
    /// <paramref name="selection"/>(position, visible keys, KV head) keeps for the head's group.
    /// </summary>
    private double ExpectedRecall(int layer, Func<int, int, int, IReadOnlySet<int>> selection)
    {
        var site = _code.Captured[layer];
        var group = site.Queries.Length / site.Keys.Length;
        double total = 0;
        for (var position = Tokens - Queries; position < Tokens; position++)
        {
            var n = position + 1;
            var kept = Enumerable.Range(0, site.Keys.Length).Select(g => selection(position, n, g)).ToArray();
            for (var h = 0; h < site.Queries.Length; h++)
            {
                var scores = Enumerable.Range(0, n).Select(j => Score(layer, h, position, j)).ToArray();
                var max = scores.Max();
                var weights = scores.Select(s => Math.Exp(s - max)).ToArray();
                total += kept[h / group].Sum(j => weights[j]) / weights.Sum();
            }
        }
        return total / (Queries * _code.Captured[layer].Queries.Length);
    }

    /// <summary>A key's rank score for KV head <paramref name="kvHead"/>: the highest score a query head of its group gives it.</summary>
    private double GroupMaxScore(int layer, int kvHead, int position, int key)
    {
        var site = _code.Captured[layer];
        var group = site.Queries.Length / site.Keys.Length;
        return Enumerable.Range(kvHead * group, group).Max(head => Score(layer, head, position, key));
    }

    /// <summary>(1/√D)·q·k of the rotated query of <paramref name="head"/> at <paramref name="position"/> and the rotated key at <paramref name="key"/>.</summary>
    private double Score(int layer, int head, int position, int key)
    {
        var site = _code.Captured[layer];
        var group = site.Queries.Length / site.Keys.Length;
        var q = RotatedQuery(layer, head, position);
        var k = RotatedKey(layer, head / group, key);
        double dot = 0;
        for (var i = 0; i < q.Length; i++)
        {
            dot += q[i] * k[i];
        }
        return dot / Math.Sqrt(q.Length);
    }

    private double[] RotatedQuery(int layer, int head, int position)
    {
        var d = _code.Captured[layer].HeadDim;
        return Rotate(_code.Captured[layer].Queries[head].AsSpan(position * d, d), position);
    }

    private double[] RotatedKey(int layer, int kvHead, int position)
    {
        lock (_rotatedKeys)
        {
            if (!_rotatedKeys.TryGetValue((layer, kvHead, position), out var rotated))
            {
                var d = _code.Captured[layer].HeadDim;
                _rotatedKeys[(layer, kvHead, position)] = rotated = Rotate(_code.Captured[layer].Keys[kvHead].AsSpan(position * d, d), position);
            }
            return rotated;
        }
    }

    private readonly Dictionary<(int Layer, int KvHead, int Position), double[]> _rotatedKeys = [];

    /// <summary>Llama's rotary embedding (rotate-half, θ = 10000) of a captured pre-rotary row at <paramref name="position"/>.</summary>
    /// <remarks>The exported graph computes float32 inverse frequencies and float32 angles: the reference rounds the same way.</remarks>
    private static double[] Rotate(ReadOnlySpan<float> x, int position)
    {
        var half = x.Length / 2;
        var rotated = new double[x.Length];
        for (var i = 0; i < half; i++)
        {
            var inverseFrequency = (float)Math.Pow(10000, -2.0 * i / x.Length);
            double angle = (float)position * inverseFrequency;
            rotated[i] = x[i] * Math.Cos(angle) - x[i + half] * Math.Sin(angle);
            rotated[i + half] = x[i + half] * Math.Cos(angle) + x[i] * Math.Sin(angle);
        }
        return rotated;
    }
}
