using Microsoft.ML.OnnxRuntime;
using Onnx;
using OrtSparse.Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>Bad attributes and bad inputs of com.ortsparse.SparseAttention give ONNX Runtime errors that name the problem and the values.</summary>
public sealed class OpErrorTests
{
    private sealed record Input(string Name, long[] Shape, DataType Type, Array Data);

    private static Input Floats(string name, params long[] shape) =>
        new(name, shape, DataType.Float, new float[shape.Aggregate(1L, (a, d) => a * d)]);

    /// <summary>A single SparseAttention node over the given inputs (empty names leave optional slots unset).</summary>
    private static string RunError(IEnumerable<AttributeProto> attributes, string[] slots, params Input[] inputs)
    {
        var node = OnnxBuilder.Node(SparseAttentionOp.OpType, slots, ["output"], attributes, name: "attention", domain: SparseAttentionOp.Domain);
        var graph = OnnxBuilder.Graph("op_errors", [node],
            inputs.Select(i => OnnxBuilder.TensorValueInfo(i.Name, i.Type, null)),
            [OnnxBuilder.TensorValueInfo("output", DataType.Float, null)]);
        var model = OnnxBuilder.Model(graph, [OnnxBuilder.Opset("", 23), OnnxBuilder.Opset(SparseAttentionOp.Domain, SparseAttentionOp.DomainVersion)]);
        var values = inputs.ToDictionary(i => i.Name, i => i.Data switch
        {
            float[] f => OrtValue.CreateTensorValueFromMemory(f, i.Shape),
            int[] n => OrtValue.CreateTensorValueFromMemory(n, i.Shape),
            _ => throw new ArgumentException(i.Name),
        });
        try
        {
            return Sessions.ErrorOf(model, values);
        }
        finally
        {
            foreach (var value in values.Values)
            {
                value.Dispose();
            }
        }
    }

    private static AttributeProto[] Heads(long heads, long kvHeads) =>
        [OnnxBuilder.IntAttribute("num_heads", heads), OnnxBuilder.IntAttribute("kv_num_heads", kvHeads)];

    [Fact]
    public void HeadsMustGroup()
    {
        var error = RunError(Heads(12, 5), ["query", "key", "value"], Floats("query", 1, 1, 12 * 64), Floats("key", 1, 1, 5 * 64), Floats("value", 1, 1, 5 * 64));
        Assert.Contains("SparseAttention: num_heads (12) must be a multiple of kv_num_heads (5)", error);
    }

    [Fact]
    public void MissingHeadsAttribute()
    {
        var error = RunError([OnnxBuilder.IntAttribute("num_heads", 4)], ["query", "key", "value"], Floats("query", 1, 1, 256), Floats("key", 1, 1, 256), Floats("value", 1, 1, 256));
        Assert.Contains("SparseAttention: attribute kv_num_heads is required", error);
    }

    [Fact]
    public void UnknownMethod()
    {
        var error = RunError([.. Heads(4, 4), OnnxBuilder.StringAttribute("method", "magic")], ["query", "key", "value"],
            Floats("query", 1, 1, 256), Floats("key", 1, 1, 256), Floats("value", 1, 1, 256));
        Assert.Contains("SparseAttention: method 'magic' is not one of dense, topk, streaming, loki, quest, saap, hash, block, hyper", error);
    }

    [Fact]
    public void HyperNeedsOneRoundOfAtMost24Hyperplanes()
    {
        string[] slots = ["query", "key", "value", "", "", "", "", "", "", "", "", "", "", "method_data_0"];
        AttributeProto[] attributes = [.. Heads(2, 1), OnnxBuilder.StringAttribute("method", "hyper")];
        var rounds = RunError(attributes, slots, Floats("query", 1, 2, 128), Floats("key", 1, 2, 64), Floats("value", 1, 2, 64),
            Floats("method_data_0", 1, 2, 64, 8));
        Assert.Contains("SparseAttention: method_data_0 has shape [1, 2, 64, 8] but must be [kv_num_heads, 1, head_size, bits] = [1, 1, 64, *]", rounds);
        var bits = RunError(attributes, slots, Floats("query", 1, 2, 128), Floats("key", 1, 2, 64), Floats("value", 1, 2, 64),
            Floats("method_data_0", 1, 1, 64, 25));
        Assert.Contains("SparseAttention: method_data_0 has shape [1, 1, 64, 25] but its bits (dimension 3 of [kv_num_heads, 1, head_size, bits]) must be at most 24, got 25", bits);
    }

    [Fact]
    public void QueryHiddenSizeMustSplitIntoHeads()
    {
        var error = RunError(Heads(3, 3), ["query", "key", "value"], Floats("query", 1, 2, 100), Floats("key", 1, 2, 96), Floats("value", 1, 2, 96));
        Assert.Contains("query", error);
        Assert.Contains("100", error);
        Assert.Contains("num_heads (3)", error);
    }

    [Fact]
    public void CacheMustHoldTheNewTokens()
    {
        var error = RunError(Heads(2, 1), ["query", "key", "value", "past_key", "past_value", "seqlens_k", "total_sequence_length"],
            Floats("query", 1, 1, 128), Floats("key", 1, 1, 64), Floats("value", 1, 1, 64),
            Floats("past_key", 1, 1, 16, 64), Floats("past_value", 1, 1, 16, 64),
            new Input("seqlens_k", [1], DataType.Int32, new[] { 5000 }), new Input("total_sequence_length", [], DataType.Int32, new[] { 16 }));
        Assert.Contains("SparseAttention: seqlens_k[0] (5000) + 1 exceeds the cache capacity", error);
    }

    [Fact]
    public void PastKeyNeedsPastValue()
    {
        var error = RunError(Heads(2, 1), ["query", "key", "value", "past_key"],
            Floats("query", 1, 1, 128), Floats("key", 1, 1, 64), Floats("value", 1, 1, 64), Floats("past_key", 1, 1, 4, 64));
        Assert.Contains("past_value", error);
        Assert.Contains("past_key", error);
    }

    [Fact]
    public void PastKeyShapeMustMatchTheHeads()
    {
        var error = RunError(Heads(2, 1), ["query", "key", "value", "past_key", "past_value"],
            Floats("query", 1, 1, 128), Floats("key", 1, 1, 64), Floats("value", 1, 1, 64), Floats("past_key", 1, 2, 4, 64), Floats("past_value", 1, 2, 4, 64));
        Assert.Contains("SparseAttention: past_key has shape [1, 2, 4, 64] but must be", error);
    }
}
