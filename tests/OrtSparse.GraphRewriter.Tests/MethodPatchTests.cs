using Onnx;
using OrtSparse.Calibration;
using OrtSparse.Cli;
using OrtSparse.Onnx;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>What patching with a sparse method adds to a model: attributes, calibration initializers, state inputs and outputs.</summary>
public sealed class MethodPatchTests : IDisposable
{
    private readonly string _scratch = Directory.CreateTempSubdirectory("ortsparse-methods-").FullName;

    public void Dispose() => Directory.Delete(_scratch, recursive: true);

    private static string Sample => Path.Combine(CliTests.RepositoryRoot(), "models", "sample", "model.onnx");

    private static ModelProto Patch(string method, IReadOnlyDictionary<string, double>? parameters = null, CalibrationData? calibration = null) =>
        ModelPatcher.Patch(OnnxModel.Load(Sample).Proto, new PatchOptions
        {
            Method = new MethodConfig { Method = method, Parameters = parameters ?? new Dictionary<string, double>() },
            Calibration = calibration,
        }).Model;

    private static NodeProto FirstAttention(ModelProto model) => model.Graph.Node.First(n => n.OpType == SparseAttentionOp.OpType);

    private static long[] InitializerShape(ModelProto model, string name) => model.Graph.Initializer.Single(i => i.Name == name).Dims.ToArray();

    [Fact]
    public void QuestGetsAttributesAndSummaryStateBesideTheCache()
    {
        var model = Patch("quest", new Dictionary<string, double> { ["budget"] = 0.125, ["page_size"] = 8 });
        var node = FirstAttention(model);
        Assert.Equal("quest", node.Attribute.Single(a => a.Name == "method").S.ToStringUtf8());
        Assert.Equal(0.125f, node.Attribute.Single(a => a.Name == "budget").F);
        Assert.Equal(8, node.Attribute.Single(a => a.Name == "page_size").I);

        var past = node.Input[SparseAttentionOp.InputIndex("past_summary")];
        var present = node.Output[SparseAttentionOp.OutputNames.ToList().IndexOf("present_summary")];
        Assert.Equal("past_key_values.0.ortsparse_summary", past);
        Assert.Equal("present.0.ortsparse_summary", present);
        Assert.Contains(model.Graph.Input, i => i.Name == past);
        Assert.Contains(model.Graph.Output, o => o.Name == present);
        // An empty default (batch 1, 1 KV head, no rows, 2·D wide): the op rebuilds the state when it is not fed.
        Assert.Equal([1, 1, 0, 128], InitializerShape(model, past));
    }

    [Fact]
    public void LokiAndSaapEmbedTheirCalibration()
    {
        var calibration = new CalibrationData();
        for (var layer = 0; layer < 2; layer++)
        {
            calibration.SetTensor(CalibrationNames.LokiBasis(layer), new CalibrationTensor(new float[64 * 64], 1, 64, 64));
            calibration.SetTensor(CalibrationNames.SaapCentroids(layer), new CalibrationTensor(new float[10 * 64], 1, 10, 64));
            calibration.SetTensor(CalibrationNames.SaapW1(layer), new CalibrationTensor(new float[2 * 64 * 16], 2, 64, 16));
            calibration.SetTensor(CalibrationNames.SaapB1(layer), new CalibrationTensor(new float[2 * 16], 2, 16));
            calibration.SetTensor(CalibrationNames.SaapW2(layer), new CalibrationTensor(new float[2 * 17 * 10], 2, 17, 10));
        }

        var loki = Patch("loki", new Dictionary<string, double> { ["rank"] = 12 }, calibration);
        var lokiNode = FirstAttention(loki);
        Assert.Equal([1, 64, 64], InitializerShape(loki, lokiNode.Input[SparseAttentionOp.InputIndex("method_data_0")]));
        Assert.Equal([1, 1, 0, 12], InitializerShape(loki, lokiNode.Input[SparseAttentionOp.InputIndex("past_summary")]));

        var saap = Patch("saap", calibration: calibration);
        var saapNode = FirstAttention(saap);
        Assert.Equal([2, 17, 10], InitializerShape(saap, saapNode.Input[SparseAttentionOp.InputIndex("method_data_3")]));
        Assert.Equal("past_key_values.0.ortsparse_index", saapNode.Input[SparseAttentionOp.InputIndex("past_index")]);
        Assert.Equal((int)TensorProto.Types.DataType.Int32, InitializerType(saap, "past_key_values.0.ortsparse_index"));
    }

    private static int InitializerType(ModelProto model, string name) => model.Graph.Initializer.Single(i => i.Name == name).DataType;

    [Fact]
    public void MissingOrMisShapedCalibrationIsNamed()
    {
        var missing = Assert.Throws<PatchException>(() => Patch("loki"));
        Assert.Equal("method 'loki' needs calibration: run 'ortsparse calibrate MODEL --tokens FILE -o CALIB' and pass --calibration CALIB", missing.Message);

        var wrong = new CalibrationData();
        wrong.SetTensor(CalibrationNames.LokiBasis(0), new CalibrationTensor(new float[2 * 64 * 64], 2, 64, 64));
        var absent = Assert.Throws<PatchException>(() => Patch("loki", calibration: wrong));
        Assert.Equal("the calibration has no tensor 'layers.1.loki.basis' for onnx.Attention-23 node '/layers.1/attn/Attention' (layer 1)", absent.Message);
        wrong.SetTensor(CalibrationNames.LokiBasis(1), new CalibrationTensor(new float[64 * 64], 1, 64, 64));
        var shape = Assert.Throws<PatchException>(() => Patch("loki", calibration: wrong));
        Assert.Contains("calibration tensor 'layers.0.loki.basis' has shape [2, 64, 64], but layer 0 (/layers.0/attn/Attention) needs [1, 64, 64]", shape.Message);
    }

    [Fact]
    public void HashDrawsProjectionsWithoutCalibration()
    {
        var model = Patch("hash", new Dictionary<string, double> { ["buckets"] = 8, ["rounds"] = 3, ["seed"] = 5 });
        var node = FirstAttention(model);
        Assert.Equal([1, 3, 64, 4], InitializerShape(model, node.Input[SparseAttentionOp.InputIndex("method_data_0")]));
        Assert.Equal([1, 1, 0, 3], InitializerShape(model, node.Input[SparseAttentionOp.InputIndex("past_index")]));
        Assert.DoesNotContain(node.Attribute, a => a.Name is "buckets" or "rounds" or "seed"); // rewriter-side parameters
        var again = Patch("hash", new Dictionary<string, double> { ["buckets"] = 8, ["rounds"] = 3, ["seed"] = 5 });
        Assert.Equal(model.Graph.Initializer, again.Graph.Initializer);
    }

    [Fact]
    public void HyperDrawsOneRoundOfHyperplanesPerLayerAndKeepsNoState()
    {
        var model = Patch("hyper", new Dictionary<string, double> { ["bits"] = 12, ["seed"] = 5, ["budget"] = 0.125 });
        var nodes = model.Graph.Node.Where(n => n.OpType == SparseAttentionOp.OpType).ToList();
        Assert.Equal(2, nodes.Count);
        Assert.Equal("hyper", nodes[0].Attribute.Single(a => a.Name == "method").S.ToStringUtf8());
        Assert.Equal(0.125f, nodes[0].Attribute.Single(a => a.Name == "budget").F);
        Assert.DoesNotContain(nodes[0].Attribute, a => a.Name is "bits" or "seed"); // rewriter-side parameters
        for (var layer = 0; layer < 2; layer++)
        {
            var node = nodes[layer]; // layer L is the L-th site in graph order
            var name = node.Input[SparseAttentionOp.InputIndex("method_data_0")];
            Assert.Equal([1, 1, 64, 12], InitializerShape(model, name));
            // hash's projections with one round of 2·bits buckets, from the layer's stream.
            var expected = HashProjections.Create(1, 1, 64, 24, 5 * 1000003 + layer);
            Assert.Equal(expected.Values.ToArray(), OnnxTensor.ToFloats(model.Graph.Initializer.Single(i => i.Name == name)));
            Assert.True(node.Input.Count <= SparseAttentionOp.InputIndex("past_index") || node.Input[SparseAttentionOp.InputIndex("past_index")] == "");
            Assert.True(node.Input[SparseAttentionOp.InputIndex("past_summary")] == "");
        }
        Assert.DoesNotContain(model.Graph.Input, i => i.Name.Contains("ortsparse"));
        Assert.DoesNotContain(model.Graph.Output, o => o.Name.Contains("ortsparse"));

        var defaults = Patch("hyper");
        var first = FirstAttention(defaults);
        Assert.Equal([1, 1, 64, 12], InitializerShape(defaults, first.Input[SparseAttentionOp.InputIndex("method_data_0")]));
        Assert.Equal(defaults.Graph.Initializer, Patch("hyper").Graph.Initializer);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(25)]
    public void HyperRejectsBitsOutOfRange(int bits)
    {
        var error = Assert.Throws<PatchException>(() => Patch("hyper", new Dictionary<string, double> { ["bits"] = bits }));
        Assert.Equal($"method 'hyper' takes 1 to 24 bits (hyperplanes per KV head), got {bits}", error.Message);
    }

    [Fact]
    public void CalibrateIsDeterministicForASeed()
    {
        var tokens = Path.Combine(_scratch, "tokens.txt");
        File.WriteAllText(tokens, string.Join(" ", Enumerable.Range(0, 300).Select(i => (i * 37 + 11) % 256)));
        string Calibrate(string name)
        {
            var output = Path.Combine(_scratch, name);
            var stdout = new StringWriter();
            var stderr = new StringWriter();
            var code = CliApp.Run(["calibrate", Sample, "--tokens", tokens, "-o", output, "--clusters", "16", "--epochs", "2", "--seed", "3"], stdout, stderr);
            Assert.True(code == 0, stderr.ToString());
            Assert.Contains("calibrated hash, loki, saap for 2 layer(s) on 300 tokens", stdout.ToString());
            return output;
        }
        var first = Calibrate("a.calib");
        var second = Calibrate("b.calib");
        Assert.Equal(File.ReadAllBytes(first), File.ReadAllBytes(second));
        var data = CalibrationData.Load(first);
        Assert.Equal([1, 64, 64], data.GetTensor(CalibrationNames.LokiBasis(1)).Shape);
        Assert.Equal([1, 16, 64], data.GetTensor(CalibrationNames.SaapCentroids(0)).Shape);
    }

    [Fact]
    public void CalibrateRejectsBadTokenFiles()
    {
        var tokens = Path.Combine(_scratch, "bad.txt");
        File.WriteAllText(tokens, "1 2 three 4");
        var stderr = new StringWriter();
        var code = CliApp.Run(["calibrate", Sample, "--tokens", tokens, "-o", Path.Combine(_scratch, "x.calib")], new StringWriter(), stderr);
        Assert.Equal(CliApp.Failed, code);
        Assert.Contains("bad.txt: token 2 ('three') is not a non-negative integer id", stderr.ToString());
    }
}
