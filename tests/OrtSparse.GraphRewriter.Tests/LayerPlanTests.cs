using System.Text.Json;
using System.Text.RegularExpressions;
using Onnx;
using OrtSparse.Cli;
using OrtSparse.Onnx;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>
/// Per-layer methods (<see cref="PatchOptions.LayerMethods"/>, <c>--dense-layers</c>, <c>--layer-method</c>),
/// what patch records in the model's metadata, and the runtime config it writes beside the model.
/// </summary>
public sealed class LayerPlanTests : IDisposable
{
    private readonly string _scratch = Directory.CreateTempSubdirectory("ortsparse-layers-").FullName;

    public void Dispose() => Directory.Delete(_scratch, recursive: true);

    private static string Sample => Path.Combine(CliTests.RepositoryRoot(), "models", "sample", "model.onnx");

    private static NodeProto[] Attentions(ModelProto model) => model.Graph.Node.Where(n => n.OpType == SparseAttentionOp.OpType).ToArray();

    private static string MethodOf(NodeProto node) => node.Attribute.Single(a => a.Name == "method").S.ToStringUtf8();

    [Fact]
    public void LayerZeroDenseLayerOneQuestWithStateOnlyForLayerOne()
    {
        var result = ModelPatcher.Patch(OnnxModel.Load(Sample).Proto, new PatchOptions
        {
            Method = new MethodConfig { Method = "quest", Parameters = new Dictionary<string, double> { ["page_size"] = 8 } },
            LayerMethods = [new LayerMethod(new LayerRange(0, 0), new MethodConfig())],
        });

        var nodes = Attentions(result.Model);
        Assert.Equal(["dense", "quest"], nodes.Select(MethodOf));
        Assert.DoesNotContain(nodes[0].Attribute, a => a.Name == "page_size");
        Assert.Equal(8, nodes[1].Attribute.Single(a => a.Name == "page_size").I);
        Assert.True(nodes[0].Input.Count <= SparseAttentionOp.InputIndex("past_index"));
        Assert.Equal("past_key_values.1.ortsparse_summary", nodes[1].Input[SparseAttentionOp.InputIndex("past_summary")]);
        Assert.Equal(["past_key_values.1.ortsparse_summary"], result.Model.Graph.Input.Select(i => i.Name).Where(n => n.Contains("ortsparse")));
        Assert.Equal(["present.1.ortsparse_summary"], result.Model.Graph.Output.Select(o => o.Name).Where(n => n.Contains("ortsparse")));
        Assert.Equal([0, 1], result.Layers.Select(l => l.Plan.Layer));
        Assert.Null(result.Layers[0].State);
        Assert.Equal(new MethodStateTensors("summary", "past_key_values.1.ortsparse_summary", "present.1.ortsparse_summary", "float", 1, 128), result.Layers[1].State);
    }

    [Fact]
    public void MetadataRecordsTheVersionAndEachLayer()
    {
        var model = OnnxModel.Load(Sample).Proto;
        model.MetadataProps.Add(new StringStringEntryProto { Key = "author", Value = "tests" });
        var patched = ModelPatcher.Patch(model, new PatchOptions
        {
            LayerMethods = [new LayerMethod(LayerRange.Parse("1-"), new MethodConfig { Method = "topk", Parameters = new Dictionary<string, double> { ["budget"] = 0.25 } })],
        }).Model;

        string Metadata(string key) => patched.MetadataProps.Single(p => p.Key == key).Value;
        Assert.Equal("tests", Metadata("author"));
        Assert.Equal(ModelPatcher.ToolVersion, Metadata(ModelPatcher.VersionMetadataKey));
        Assert.Equal("0.1.0", ModelPatcher.ToolVersion);
        Assert.Equal("""
            {"version":"0.1.0","layers":[{"layer":0,"node":"/layers.0/attn/Attention","form":"onnx.Attention-23","method":"dense","parameters":{}},{"layer":1,"node":"/layers.1/attn/Attention","form":"onnx.Attention-23","method":"topk","parameters":{"budget":0.25}}],"left":[]}
            """, Metadata(ModelPatcher.MetadataKey));
    }

    /// <summary>The runtime config of the sample model, patched by the CLI with layer 0 dense and layer 1 quest.</summary>
    [Fact]
    public void PatchWritesTheRuntimeConfigBesideTheModel()
    {
        var output = Path.Combine(_scratch, "sample.onnx");
        var patch = CliTests.Cli("patch", Sample, "-o", output, "--method", "quest", "--page-size", "8", "--dense-layers", "0");
        Assert.True(patch.Code == 0, patch.Err);
        Assert.Contains("patched 2 attention site(s), layers 0 dense, 1 quest", patch.Out);
        var configPath = Path.Combine(_scratch, "sample.ortsparse.json");
        Assert.Contains($"runtime config -> {configPath}", patch.Out);
        Assert.Equal(["sample.onnx", "sample.ortsparse.json"], Directory.GetFileSystemEntries(_scratch).Select(Path.GetFileName).Order());

        using var config = JsonDocument.Parse(File.ReadAllText(configPath));
        var root = config.RootElement;
        Assert.Equal("ortsparse.runtime_config", root.GetProperty("format").GetString());
        Assert.Equal(1, root.GetProperty("format_version").GetInt32());
        Assert.Equal("0.1.0", root.GetProperty("producer").GetProperty("version").GetString());
        Assert.Equal("sample.onnx", root.GetProperty("model").GetString());
        Assert.Equal("""{"domain":"com.ortsparse","version":1,"op_type":"SparseAttention","library":"libortsparse_ops.so"}""", Compact(root.GetProperty("op")));
        Assert.Equal(2, root.GetProperty("num_layers").GetInt32());
        Assert.Equal(JsonValueKind.Null, root.GetProperty("max_length").ValueKind);
        Assert.Equal(0, root.GetProperty("left").GetArrayLength());

        var layers = root.GetProperty("layers").EnumerateArray().ToList();
        Assert.Equal("""
            {"layer":0,"node":"/layers.0/attn/Attention","form":"onnx.Attention-23","num_heads":2,"kv_num_heads":1,"head_size":64,"element_type":"float",
            "cache":{"mode":"concat","added":false,"past_key":"past_key_values.0.key","past_value":"past_key_values.0.value","present_key":"present.0.key","present_value":"present.0.value"},
            "rotary":null,"max_length":null,"method":{"name":"dense","parameters":{}},"state":null}
            """.ReplaceLineEndings(""), Compact(layers[0]));
        Assert.Equal("""
            {"layer":1,"node":"/layers.1/attn/Attention","form":"onnx.Attention-23","num_heads":2,"kv_num_heads":1,"head_size":64,"element_type":"float",
            "cache":{"mode":"concat","added":false,"past_key":"past_key_values.1.key","past_value":"past_key_values.1.value","present_key":"present.1.key","present_value":"present.1.value"},
            "rotary":null,"max_length":null,"method":{"name":"quest","parameters":{"page_size":8}},
            "state":{"slot":"summary","input":"past_key_values.1.ortsparse_summary","output":"present.1.ortsparse_summary","element_type":"float","shape":["batch_size",1,"state_length",128]}}
            """.ReplaceLineEndings(""), Compact(layers[1]));

        // What the config names is what the model holds.
        var model = OnnxModel.Load(output).Proto;
        Assert.Contains(model.Graph.Input, i => i.Name == "past_key_values.1.ortsparse_summary");
        Assert.Contains(model.Graph.Output, o => o.Name == "present.1.ortsparse_summary");
        Assert.Equal(["dense", "quest"], Attentions(model).Select(MethodOf));
    }

    /// <summary>A GroupQueryAttention model (shared-buffer cache, rotary inside the op with a 20-row table) and an ONNX Attention fed by broadcast rotary rows.</summary>
    [Fact]
    public void RuntimeConfigOfContribAndRotaryModels()
    {
        var gqa = ModelPatcher.Patch(new GroupQueryAttentionCase { Lengths = [12, 7], Capacity = 16, RotaryDim = 16, Interleaved = true }.BuildModel(),
            new PatchOptions { Method = new MethodConfig { Method = "quest" } });
        using var gqaConfig = JsonDocument.Parse(RuntimeConfig.ToJson(gqa, "gqa.onnx"));
        Assert.Equal(20, gqaConfig.RootElement.GetProperty("max_length").GetInt64());
        Assert.Equal("""
            {"layer":0,"node":"/model/layers.0/attn/GroupQueryAttention","form":"com.microsoft.GroupQueryAttention","num_heads":4,"kv_num_heads":2,"head_size":16,"element_type":"float",
            "cache":{"mode":"shared_buffer","added":false,"past_key":"past_key_values.0.key","past_value":"past_key_values.0.value","present_key":"present.0.key","present_value":"present.0.value"},
            "rotary":{"interleaved":true},"max_length":20,"method":{"name":"quest","parameters":{}},
            "state":{"slot":"summary","input":"past_key_values.0.ortsparse_summary","output":"present.0.ortsparse_summary","element_type":"float","shape":["batch_size",2,"state_length",32]}}
            """.ReplaceLineEndings(""), Compact(gqaConfig.RootElement.GetProperty("layers")[0]));

        var table = ModelPatcher.Patch(new OnnxRotaryAttentionCase { Batch = 2, PastLength = 3 }.BuildModel());
        using var tableConfig = JsonDocument.Parse(RuntimeConfig.ToJson(table, "table.onnx"));
        Assert.Equal(OnnxRotaryAttentionCase.MaxPositions, tableConfig.RootElement.GetProperty("max_length").GetInt64());

        var rows = ModelPatcher.Patch(new OnnxRotaryAttentionCase { Batch = 2, PastLength = 3, Interleaved = true, Tables = RotaryTables.BroadcastRows }.BuildModel());
        using var rowsConfig = JsonDocument.Parse(RuntimeConfig.ToJson(rows, "rows.onnx"));
        var layer = rowsConfig.RootElement.GetProperty("layers")[0];
        Assert.Equal("""{"interleaved":true}""", Compact(layer.GetProperty("rotary")));
        Assert.Equal(JsonValueKind.Null, layer.GetProperty("max_length").ValueKind); // the rows of each step: no table length
        Assert.Equal("past_key", layer.GetProperty("cache").GetProperty("past_key").GetString());
    }

    /// <summary>A model with external data: the data file, the model and its config arrive together, and the model runs.</summary>
    [Fact]
    public void ExternalDataAndTheConfigArriveTogether()
    {
        var input = Path.Combine(_scratch, "in", "model.onnx");
        Directory.CreateDirectory(Path.GetDirectoryName(input)!);
        OnnxModel.Load(Sample).Save(input, new SaveOptions { ExternalDataThreshold = 1024 });
        var output = Path.Combine(_scratch, "out", "model.onnx");

        var patch = CliTests.Cli("patch", input, "-o", output, "--method", "quest", "--dense-layers", "0");
        Assert.True(patch.Code == 0, patch.Err);
        Assert.Equal(["model.onnx", "model.onnx.data", "model.ortsparse.json"], Directory.GetFileSystemEntries(Path.GetDirectoryName(output)!).Select(Path.GetFileName).Order());
        var check = CliTests.Cli("check", output, Path.GetDirectoryName(Sample)!);
        Assert.True(check.Code == 0, check.Out + check.Err);
        Assert.Contains("all 10 outputs match", check.Out);
    }

    [Theory]
    [InlineData("out/model.onnx", "out/model.ortsparse.json")]
    [InlineData("out/model.ortsparse.onnx", "out/model.ortsparse.json")]
    [InlineData("out/model", "out/model.ortsparse.json")]
    public void TheRuntimeConfigIsNamedAfterTheModel(string model, string config) => Assert.Equal(config, RuntimeConfig.PathBeside(model));

    [Fact]
    public void TheRuntimeConfigNeverOverwritesTheInput()
    {
        var input = Path.Combine(_scratch, "model.ortsparse.json");
        File.Copy(Sample, input);
        var before = File.ReadAllBytes(input);
        var result = CliTests.Cli("patch", input, "-o", Path.Combine(_scratch, "model.onnx"));
        Assert.Equal(CliApp.Usage, result.Code);
        Assert.Contains($"the runtime config {input} would overwrite the input model {input}", result.Err);
        Assert.Equal(before, File.ReadAllBytes(input));
        Assert.False(File.Exists(Path.Combine(_scratch, "model.onnx")));
    }

    [Fact]
    public void InspectPrintsThePlanOfTheOptions()
    {
        var result = CliTests.Cli("inspect", Sample, "--layer-method", "1-=quest:budget=0.125:page-size=8");
        Assert.True(result.Code == 0, result.Err);
        Assert.Contains("plan (layer L is the L-th site that can be replaced, in graph order):", result.Out);
        var rows = result.Out.Split('\n').SkipWhile(l => !l.StartsWith("plan", StringComparison.Ordinal)).Skip(3)
            .Where(l => l.Length > 0).Select(l => Regex.Split(l.Trim(), @"\s{2,}")).ToList();
        Assert.Equal(2, rows.Count);
        Assert.Equal(["0", "/layers.0/attn/Attention", "dense", "-", "-"], rows[0]);
        Assert.Equal(["1", "/layers.1/attn/Attention", "quest", "budget=0.125, page_size=8", "past_key_values.1.ortsparse_summary -> present.1.ortsparse_summary"], rows[1]);
    }

    [Fact]
    public void OptionsAreCheckedAgainstEachOtherAndTheModel()
    {
        var overlap = Assert.Throws<ArgumentException>(() => new PatchOptions
        {
            LayerMethods = [new LayerMethod(LayerRange.Parse("0-3"), new MethodConfig { Method = "quest" }), new LayerMethod(LayerRange.Parse("2-"), new MethodConfig())],
        }.Validate());
        Assert.Equal("Layers 0-3 (quest) and 2- (dense) overlap; give each layer one method.", overlap.Message);

        var missing = Assert.Throws<PatchException>(() => ModelPatcher.Patch(OnnxModel.Load(Sample).Proto,
            new PatchOptions { LayerMethods = [new LayerMethod(LayerRange.Parse("2-"), new MethodConfig { Method = "quest" })] }));
        Assert.Equal("layers 2- (quest): the model has no layer 2; the attention sites that can be replaced are layers 0 to 1", missing.Message);

        var parameter = Assert.Throws<ArgumentException>(() => new PatchOptions
        {
            LayerMethods = [new LayerMethod(LayerRange.Parse("1"), new MethodConfig { Method = "quest", Parameters = new Dictionary<string, double> { ["rank"] = 4 } })],
        }.Validate());
        Assert.Equal("Layers 1: Method 'quest' has no parameter 'rank' (it takes: budget, sink, window, dense_below, page_size).", parameter.Message);
    }

    [Theory]
    [InlineData("3", 3, 3)]
    [InlineData("0-1", 0, 1)]
    [InlineData("2-", 2, null)]
    public void LayerRangesParse(string text, int first, int? last)
    {
        var range = LayerRange.Parse(text);
        Assert.Equal((first, last), (range.First, range.Last));
        Assert.Equal(text, range.ToString());
    }

    [Theory]
    [InlineData(new[] { "--layer-method", "0-1" }, "--layer-method '0-1': no '=METHOD' (write LAYERS=METHOD[:PARAMETER=VALUE...], e.g. 0-1=dense)")]
    [InlineData(new[] { "--layer-method", "x=dense" }, "--layer-method 'x=dense': 'x' is not a layer range: write N, N-M or N- with layer numbers from 0")]
    [InlineData(new[] { "--layer-method", "3-1=dense" }, "--layer-method '3-1=dense': the layer range '3-1' ends before it starts")]
    [InlineData(new[] { "--layer-method", "0=dense,2-=quset" }, "--layer-method '2-=quset': unknown method 'quset' (available: dense, topk, streaming, loki, quest, saap, hash, block, hyper)")]
    [InlineData(new[] { "--layer-method", "2-=quest:budget" }, "--layer-method '2-=quest:budget': 'budget' is not PARAMETER=VALUE")]
    [InlineData(new[] { "--layer-method", "2-=quest:budget=lots" }, "--layer-method '2-=quest:budget=lots': budget expects a number, got 'lots'")]
    [InlineData(new[] { "--layer-method", "1-=quest:page-size=2.5" }, "Layers 1-: Parameter 'page_size' of method 'quest' must be an integer, got 2.5.")]
    [InlineData(new[] { "--dense-layers", "0,-1" }, "--dense-layers '-1': '-1' is not a layer range: write N, N-M or N- with layer numbers from 0")]
    [InlineData(new[] { "--dense-layers", "0-1", "--layer-method", "1-=quest" }, "Layers 0-1 (dense) and 1- (quest) overlap; give each layer one method.")]
    [InlineData(new[] { "--method", "streaming", "--dense-layers", "0", "--budget", "0.1" }, "--budget: none of the methods in use (streaming, dense) takes it")]
    public void MalformedLayerOptionsAreNamed(string[] options, string message)
    {
        foreach (var command in new string[][] { ["patch", "in.onnx", "-o", "out.onnx"], ["inspect", "in.onnx"] })
        {
            var result = CliTests.Cli([.. command, .. options]);
            Assert.Equal(CliApp.Usage, result.Code);
            Assert.Contains($"ortsparse {command[0]}: {message}", result.Err);
        }
    }

    private static string Compact(JsonElement element) => JsonSerializer.Serialize(element);
}
