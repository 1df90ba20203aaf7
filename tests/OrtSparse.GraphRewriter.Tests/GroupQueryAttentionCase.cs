using Onnx;
using OrtSparse.Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>
/// One com.microsoft.GroupQueryAttention step as ONNX Runtime GenAI runs it: sequence b holds
/// <c>Lengths[b]</c> keys after the step (seqlens_k = Lengths − 1, total_sequence_length = their
/// maximum), the last <c>QueryLength</c> of them new; shorter sequences of a first prompt are
/// right-padded. The cache, when there is one, is a buffer of <c>Capacity</c> positions
/// (past_key_values.0.key → present.0.key, GenAI's names), as with a shared past/present buffer.
/// </summary>
public sealed record GroupQueryAttentionCase
{
    /// <summary>Valid keys per sequence after the step; one entry per batch row.</summary>
    public int[] Lengths { get; init; } = [8];

    /// <summary>S: new tokens per sequence (the padded prompt length of a first prompt).</summary>
    public int QueryLength { get; init; } = 1;

    /// <summary>Positions of the past_key buffer; 0 means the model has no past inputs.</summary>
    public int Capacity { get; init; }

    /// <summary>num_heads.</summary>
    public int NumHeads { get; init; } = 4;

    /// <summary>kv_num_heads.</summary>
    public int KvNumHeads { get; init; } = 2;

    /// <summary>D (a multiple of 16 where the rotary embedding is used: ONNX Runtime's CPU kernel needs it).</summary>
    public int HeadDim { get; init; } = 16;

    /// <summary>R: 0 without do_rotary; HeadDim for a full rotary embedding.</summary>
    public int RotaryDim { get; init; }

    /// <summary>rotary_interleaved.</summary>
    public bool Interleaved { get; init; }

    /// <summary>Give position_ids (past + row) rather than letting the op derive them.</summary>
    public bool PositionIds { get; init; }

    /// <summary>local_window_size (−1: none).</summary>
    public int LocalWindow { get; init; } = -1;

    /// <summary>softcap (0: none).</summary>
    public float Softcap { get; init; }

    /// <summary>scale (0: 1/√D).</summary>
    public float Scale { get; init; }

    /// <summary>Query, key and value packed into one input.</summary>
    public bool PackedQkv { get; init; }

    /// <summary>An additive attention_bias [B, 1, S, total_sequence_length].</summary>
    public bool AttentionBias { get; init; }

    /// <summary>The ONNX opset the model imports, or null for a graph importing com.microsoft only.</summary>
    public long? OnnxOpset { get; init; } = 21;

    private int Batch => Lengths.Length;
    private int Total => Lengths.Max();
    private int PresentLength => Math.Max(Capacity, Total);

    /// <summary>Keys already cached for sequence b (0 for a first prompt).</summary>
    public int Past(int b) => Math.Max(0, Lengths[b] - QueryLength);

    /// <summary>Query rows of sequence b that are not padding.</summary>
    public int ValidRows(int b) => Lengths[b] - Past(b);

    /// <summary>A short label for test names.</summary>
    public override string ToString() =>
        $"L[{string.Join(",", Lengths)}] S{QueryLength} cap{Capacity} H{NumHeads}/{KvNumHeads} D{HeadDim}" +
        $"{(RotaryDim > 0 ? $" rotary{RotaryDim}{(Interleaved ? "i" : "")}" : "")}{(PositionIds ? " pos" : "")}" +
        $"{(LocalWindow > 0 ? $" window{LocalWindow}" : "")}{(Softcap > 0 ? $" softcap{Softcap}" : "")}{(Scale > 0 ? $" scale{Scale}" : "")}" +
        $"{(PackedQkv ? " packed" : "")}{(AttentionBias ? " bias" : "")}{(OnnxOpset is null ? " contrib-only" : "")}";

    /// <summary>The inputs of the model, seeded.</summary>
    public IReadOnlyList<Feed> Feeds(int seed)
    {
        var random = new Random(seed);
        int S = QueryLength, D = HeadDim;
        var feeds = new List<Feed>();
        Feed Floats(string name, params long[] shape) => new(name, DataType.Float, shape, ContribModels.Uniform(random, shape.Aggregate(1L, (a, d) => a * d)));
        if (PackedQkv)
        {
            feeds.Add(Floats("qkv", Batch, S, (NumHeads + 2 * KvNumHeads) * D));
        }
        else
        {
            feeds.Add(Floats("query", Batch, S, NumHeads * D));
            feeds.Add(Floats("key", Batch, S, KvNumHeads * D));
            feeds.Add(Floats("value", Batch, S, KvNumHeads * D));
        }
        if (Capacity > 0)
        {
            feeds.Add(Floats("past_key_values.0.key", Batch, KvNumHeads, Capacity, D));
            feeds.Add(Floats("past_key_values.0.value", Batch, KvNumHeads, Capacity, D));
        }
        feeds.Add(new Feed("seqlens_k", DataType.Int32, [Batch], Lengths.Select(l => l - 1).ToArray()));
        feeds.Add(new Feed("total_sequence_length", DataType.Int32, [], new[] { Total }));
        if (PositionIds)
        {
            feeds.Add(new Feed("position_ids", DataType.Int64, [Batch, S],
                Enumerable.Range(0, Batch * S).Select(i => (long)(Past(i / S) + i % S)).ToArray()));
        }
        if (AttentionBias)
        {
            feeds.Add(Floats("attention_bias", Batch, 1, S, Total));
        }
        return feeds;
    }

    /// <summary>The single-node GroupQueryAttention model.</summary>
    public ModelProto BuildModel()
    {
        var inputs = Feeds(0).Select(f => f.ValueInfo()).ToList();
        string Wire(string name) => inputs.Any(i => i.Name == name) ? name : "";
        var rotary = RotaryDim > 0;
        var node = OnnxBuilder.Node("GroupQueryAttention",
            new[]
            {
                PackedQkv ? "qkv" : "query", Wire("key"), Wire("value"), Wire("past_key_values.0.key"), Wire("past_key_values.0.value"),
                "seqlens_k", "total_sequence_length", rotary ? "cos_cache" : "", rotary ? "sin_cache" : "", Wire("position_ids"), Wire("attention_bias"),
            }.Reverse().SkipWhile(n => n.Length == 0).Reverse(),
            ["output", "present.0.key", "present.0.value"], Attributes(), "/model/layers.0/attn/GroupQueryAttention", "com.microsoft");
        var outputs = new[]
        {
            OnnxBuilder.TensorValueInfo("output", DataType.Float, [Batch, QueryLength, NumHeads * HeadDim]),
            OnnxBuilder.TensorValueInfo("present.0.key", DataType.Float, [Batch, KvNumHeads, PresentLength, HeadDim]),
            OnnxBuilder.TensorValueInfo("present.0.value", DataType.Float, [Batch, KvNumHeads, PresentLength, HeadDim]),
        };
        var initializers = new List<TensorProto>();
        if (rotary)
        {
            var (cos, sin) = ContribModels.RotaryTables(PresentLength + 4, RotaryDim);
            initializers.AddRange([cos, sin]);
        }
        return ContribModels.Model([node], inputs, outputs, initializers, OnnxOpset);
    }

    private IEnumerable<AttributeProto> Attributes()
    {
        yield return OnnxBuilder.IntAttribute("num_heads", NumHeads);
        yield return OnnxBuilder.IntAttribute("kv_num_heads", KvNumHeads);
        if (RotaryDim > 0)
        {
            yield return OnnxBuilder.IntAttribute("do_rotary", 1);
            yield return OnnxBuilder.IntAttribute("rotary_interleaved", Interleaved ? 1 : 0);
        }
        if (LocalWindow > 0)
        {
            yield return OnnxBuilder.IntAttribute("local_window_size", LocalWindow);
        }
        if (Softcap > 0)
        {
            yield return OnnxBuilder.FloatAttribute("softcap", Softcap);
        }
        if (Scale > 0)
        {
            yield return OnnxBuilder.FloatAttribute("scale", Scale);
        }
    }

    /// <summary>
    /// Whether element <paramref name="index"/> of an output is defined: output rows of padding
    /// queries and cache positions beyond a sequence's length are not (GroupQueryAttention leaves
    /// padding keys or stale memory there, SparseAttention zeros).
    /// </summary>
    public bool Defined(string output, long[] shape, long index)
    {
        if (output == "output")
        {
            var row = index / shape[2] % shape[1];
            return row < ValidRows((int)(index / (shape[1] * shape[2])));
        }
        if (output.StartsWith("present.0.", StringComparison.Ordinal))
        {
            var position = index / shape[3] % shape[2];
            return position < Lengths[(int)(index / (shape[1] * shape[2] * shape[3]))];
        }
        return true;
    }
}
