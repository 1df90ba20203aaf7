using Google.Protobuf;
using Onnx;
using OrtSparse.Cli.Bench;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>What the rewriter changes in a model, what it leaves alone, and how it refuses sites it cannot handle.</summary>
public sealed class PatchTests
{
    private static ModelProto ModelWithNeighbours()
    {
        // Attention between two unrelated nodes, with metadata, a doc string and a custom IR version.
        var model = new AttentionCase { Batch = 1, QueryLength = 2, PastLength = 3, NumHeads = 4, KvNumHeads = 2, HeadDim = 64 }.BuildModel();
        model.IrVersion = 9;
        model.ProducerName = "pytorch";
        model.ProducerVersion = "2.11";
        model.DocString = "kept";
        model.MetadataProps.Add(new StringStringEntryProto { Key = "author", Value = "tests" });
        var graph = model.Graph;
        graph.Node.Insert(0, new NodeProto { OpType = "Identity", Name = "before", Input = { "query" }, Output = { "query_copy" } });
        graph.Node[1].Input[0] = "query_copy";
        graph.Node.Add(new NodeProto { OpType = "Relu", Name = "after", Input = { "output" }, Output = { "relu_output" } });
        graph.Output.Add(AttentionCase.ValueInfo("relu_output", TensorProto.Types.DataType.Float, [1, 2, 4 * 64]));
        return model;
    }

    [Fact]
    public void ReplacesAttentionAndKeepsEverythingElse()
    {
        var model = ModelWithNeighbours();
        var before = model.ToByteArray();

        var result = ModelPatcher.Patch(model);

        Assert.Equal(before, model.ToByteArray()); // the input model is not modified
        var patched = result.Model;
        Assert.Single(result.Replaced);
        Assert.Equal(["before", "attention", "after"], patched.Graph.Node.Select(n => n.Name));
        Assert.Equal(model.Graph.Node[0], patched.Graph.Node[0]);
        Assert.Equal(model.Graph.Node[2], patched.Graph.Node[2]);
        var attention = patched.Graph.Node[1];
        Assert.Equal((SparseAttentionOp.Domain, SparseAttentionOp.OpType), (attention.Domain, attention.OpType));
        Assert.Equal(["query_copy", "key", "value", "past_key", "past_value"], attention.Input);
        Assert.Equal(["output", "present_key", "present_value"], attention.Output);
        Assert.Equal(4, attention.Attribute.Single(a => a.Name == "num_heads").I);
        Assert.Equal(2, attention.Attribute.Single(a => a.Name == "kv_num_heads").I);
        Assert.Equal("dense", attention.Attribute.Single(a => a.Name == "method").S.ToStringUtf8());
        Assert.Equal((9, "pytorch", "2.11", "kept"), (patched.IrVersion, patched.ProducerName, patched.ProducerVersion, patched.DocString));
        Assert.Equal(model.Graph.Input, patched.Graph.Input);
        Assert.Equal(model.Graph.Output, patched.Graph.Output);
        Assert.Contains(patched.OpsetImport, o => o.Domain == "" && o.Version == 23);
        Assert.Contains(patched.OpsetImport, o => o.Domain == SparseAttentionOp.Domain && o.Version == SparseAttentionOp.DomainVersion);
        Assert.Contains(patched.MetadataProps, p => p.Key == "author" && p.Value == "tests");
        var record = patched.MetadataProps.Single(p => p.Key == ModelPatcher.MetadataKey).Value;
        Assert.Contains("\"method\":\"dense\"", record);
        Assert.Contains("\"node\":\"attention\"", record);
    }

    [Fact]
    public void FourDimensionalSitesGetLayoutChangesAroundTheOp()
    {
        var model = new AttentionCase { Batch = 1, QueryLength = 2, PastLength = 0, NumHeads = 4, KvNumHeads = 2, HeadDim = 64, Rank = 4 }.BuildModel();
        var patched = ModelPatcher.Patch(model).Model;
        var opTypes = patched.Graph.Node.Select(n => n.OpType).ToList();
        Assert.Equal(4, opTypes.Count(t => t == "Transpose")); // Q, K, V in; the output back to BNSH
        Assert.Equal("Transpose", opTypes[^1]);
        Assert.Equal("output", patched.Graph.Node[^1].Output[0]);
    }

    [Fact]
    public void RefusesSitesThatUseAttentionScores()
    {
        var model = new AttentionCase { Batch = 1, QueryLength = 2, NumHeads = 2, KvNumHeads = 2, HeadDim = 64 }.BuildModel();
        var node = model.Graph.Node[0];
        node.Output.Add(["", "", "scores"]);

        var error = Assert.Throws<PatchException>(() => ModelPatcher.Patch(model));
        Assert.Contains("onnx.Attention-23 node 'attention': qk_matmul_output (output 3) is used", error.Message);
        Assert.Contains("--leave-unsupported", error.Message);

        var site = Assert.Single(AttentionSiteFinder.Find(model));
        Assert.False(site.CanReplace);
    }

    [Fact]
    public void RefusesExternalCacheInputsOfOpset24()
    {
        var model = new AttentionCase { Batch = 1, QueryLength = 2, NumHeads = 2, KvNumHeads = 2, HeadDim = 64, Opset = 24 }.BuildModel();
        model.Graph.Node[0].Input.Add(["", "", "", "nonpad"]);
        var site = Assert.Single(AttentionSiteFinder.Find(model));
        Assert.Equal("onnx.Attention-24", site.Kind);
        Assert.Equal("nonpad_kv_seqlen (an external KV cache) is not supported yet", site.UnsupportedReason);
    }

    [Fact]
    public void LeavesUnsupportedSitesWhenAsked()
    {
        var model = new AttentionCase { Batch = 1, QueryLength = 2, NumHeads = 2, KvNumHeads = 2, HeadDim = 64 }.BuildModel();
        var second = model.Graph.Node[0].Clone();
        second.Name = "attention_with_scores";
        second.Output.Clear();
        second.Output.Add(["output2", "", "", "scores"]);
        model.Graph.Node.Add(second);

        var result = ModelPatcher.Patch(model, new PatchOptions { LeaveUnsupported = true });

        Assert.Equal("attention", Assert.Single(result.Replaced).NodeName);
        Assert.Equal("attention_with_scores", Assert.Single(result.Left).NodeName);
        Assert.Contains(result.Model.Graph.Node, n => n.OpType == "Attention" && n.Name == "attention_with_scores");
    }

    [Fact]
    public void RejectsUnknownMethodsAndModelsWithoutAttention()
    {
        var model = new AttentionCase().BuildModel();
        var unknown = Assert.Throws<ArgumentException>(() => ModelPatcher.Patch(model, new PatchOptions { Method = new MethodConfig { Method = "magic" } }));
        Assert.Equal("Unknown method 'magic' (available: dense, topk, streaming, loki, quest, saap, hash, block, hyper).", unknown.Message);

        model.Graph.Node[0].OpType = "Softmax";
        var none = Assert.Throws<PatchException>(() => ModelPatcher.Patch(model));
        Assert.Equal("The model has no attention site that the rewriter recognises.", none.Message);
    }

    [Fact]
    public void ReportsUnknownHeadCounts()
    {
        var model = new AttentionCase { Rank = 4 }.BuildModel();
        model.Graph.Input.Clear(); // no shapes: the heads of a 4-D site cannot be known
        model.Graph.Input.Add(new ValueInfoProto { Name = "query" });
        var site = Assert.Single(AttentionSiteFinder.Find(model));
        Assert.Equal("the rank of Q is unknown: give the graph's inputs shapes or run shape inference first", site.UnsupportedReason);
    }
}
