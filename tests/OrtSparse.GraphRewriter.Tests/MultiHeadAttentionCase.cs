using Onnx;
using OrtSparse.Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>
/// One com.microsoft.MultiHeadAttention step with a concat-mode cache (past_key_values.0.key →
/// present.0.key), optionally fed by com.microsoft.RotaryEmbedding nodes on its query and key, as
/// ONNX Runtime's transformers optimizer fuses decoder attention.
/// </summary>
public sealed record MultiHeadAttentionCase
{
    /// <summary>B.</summary>
    public int Batch { get; init; } = 1;

    /// <summary>S (= new keys).</summary>
    public int QueryLength { get; init; } = 1;

    /// <summary>P: cached keys.</summary>
    public int PastLength { get; init; }

    /// <summary>Give past inputs and present outputs even when <see cref="PastLength"/> is 0.</summary>
    public bool WithCache { get; init; } = true;

    /// <summary>num_heads.</summary>
    public int NumHeads { get; init; } = 4;

    /// <summary>D.</summary>
    public int HeadDim { get; init; } = 16;

    /// <summary>R: 0 without RotaryEmbedding nodes; HeadDim rotates whole heads, less sets rotary_embedding_dim.</summary>
    public int RotaryDim { get; init; }

    /// <summary>RotaryEmbedding's interleaved.</summary>
    public bool Interleaved { get; init; }

    /// <summary>The unidirectional attribute (causal).</summary>
    public bool Unidirectional { get; init; } = true;

    /// <summary>A key_padding_mask [B, P + S] of int32 0/1 (position 0 always 1).</summary>
    public bool KeyPaddingMask { get; init; }

    /// <summary>An additive attention_bias [1, H, S, P + S].</summary>
    public bool AttentionBias { get; init; }

    /// <summary>The bias input [3·H·D] added to Q, K and V.</summary>
    public bool Bias { get; init; }

    /// <summary>scale (0: 1/√D).</summary>
    public float Scale { get; init; }

    /// <summary>Rows of the cos and sin tables.</summary>
    public const int MaxPositions = 64;

    private bool HasCache => WithCache || PastLength > 0;
    private int Hidden => NumHeads * HeadDim;

    /// <summary>The name of the query (or key) graph input: before rotation when RotaryEmbedding nodes rotate it.</summary>
    public string InputName(string role) => RotaryDim > 0 ? $"{role}_in" : role;

    /// <summary>A short label for test names.</summary>
    public override string ToString() =>
        $"B{Batch} S{QueryLength} P{PastLength}{(HasCache ? "" : "(none)")} H{NumHeads} D{HeadDim}" +
        $"{(RotaryDim > 0 ? $" rotary{RotaryDim}{(Interleaved ? "i" : "")}" : "")}{(Unidirectional ? " causal" : "")}" +
        $"{(KeyPaddingMask ? " padding-mask" : "")}{(AttentionBias ? " attention-bias" : "")}{(Bias ? " bias" : "")}{(Scale > 0 ? $" scale{Scale}" : "")}";

    /// <summary>The inputs of the model, seeded; <paramref name="pastLength"/> overrides P (for a later step of a sequence).</summary>
    public IReadOnlyList<Feed> Feeds(int seed, int? pastLength = null)
    {
        var random = new Random(seed);
        int S = QueryLength, P = pastLength ?? PastLength;
        var feeds = new List<Feed>();
        Feed Floats(string name, params long[] shape) => new(name, DataType.Float, shape, ContribModels.Uniform(random, shape.Aggregate(1L, (a, d) => a * d)));
        feeds.Add(Floats(InputName("query"), Batch, S, Hidden));
        feeds.Add(Floats(InputName("key"), Batch, S, Hidden));
        feeds.Add(Floats("value", Batch, S, Hidden));
        if (HasCache)
        {
            feeds.Add(Floats("past_key_values.0.key", Batch, NumHeads, P, HeadDim));
            feeds.Add(Floats("past_key_values.0.value", Batch, NumHeads, P, HeadDim));
        }
        if (RotaryDim > 0)
        {
            // Sequence b starts b positions later, so positions differ across the batch.
            feeds.Add(new Feed("position_ids", DataType.Int64, [Batch, S], Enumerable.Range(0, Batch * S).Select(i => (long)(i / S + P + i % S)).ToArray()));
        }
        if (KeyPaddingMask)
        {
            feeds.Add(new Feed("key_padding_mask", DataType.Int32, [Batch, P + S],
                Enumerable.Range(0, Batch * (P + S)).Select(i => i % (P + S) == 0 || random.NextDouble() > 0.25 ? 1 : 0).ToArray()));
        }
        if (AttentionBias)
        {
            feeds.Add(Floats("attention_bias", 1, NumHeads, S, P + S));
        }
        return feeds;
    }

    /// <summary>The model: RotaryEmbedding nodes (if any) and MultiHeadAttention.</summary>
    public ModelProto BuildModel()
    {
        var feeds = Feeds(0);
        var inputs = feeds.Select(f => f.ValueInfo()).ToList();
        var nodes = new List<NodeProto>();
        var initializers = new List<TensorProto>();
        if (RotaryDim > 0)
        {
            var (cos, sin) = ContribModels.RotaryTables(MaxPositions, RotaryDim);
            initializers.AddRange([cos, sin]);
            foreach (var role in new[] { "query", "key" })
            {
                nodes.Add(OnnxBuilder.Node("RotaryEmbedding", [InputName(role), "position_ids", "cos_cache", "sin_cache"], [role], RotaryAttributes(),
                    $"/model/layers.0/attn/{role}_rotary", "com.microsoft"));
            }
        }
        if (Bias)
        {
            initializers.Add(OnnxTensor.Create("qkv_bias", ContribModels.Uniform(new Random(5), 3 * Hidden), 3 * Hidden));
        }
        string Wire(string name) => inputs.Any(i => i.Name == name) || initializers.Any(i => i.Name == name) ? name : "";
        var attention = OnnxBuilder.Node("MultiHeadAttention",
            new[] { "query", "key", "value", Wire("qkv_bias"), Wire("key_padding_mask"), Wire("attention_bias"), Wire("past_key_values.0.key"), Wire("past_key_values.0.value") }
                .Reverse().SkipWhile(n => n.Length == 0).Reverse(),
            HasCache ? ["output", "present.0.key", "present.0.value"] : ["output"],
            AttentionAttributes(), "/model/layers.0/attn/MultiHeadAttention", "com.microsoft");
        nodes.Add(attention);
        var outputs = new List<ValueInfoProto> { OnnxBuilder.TensorValueInfo("output", DataType.Float, [Batch, "sequence_length", Hidden]) };
        // The sequence length and the cache length change from step to step.
        foreach (var input in inputs.Where(i => i.Name is "query" or "query_in" or "key" or "key_in" or "value" or "position_ids"))
        {
            input.Type.TensorType.Shape.Dim[1].DimParam = "sequence_length";
        }
        if (AttentionBias)
        {
            inputs.Single(i => i.Name == "attention_bias").Type.TensorType.Shape.Dim[2].DimParam = "sequence_length";
        }
        if (HasCache)
        {
            outputs.Add(OnnxBuilder.TensorValueInfo("present.0.key", DataType.Float, [Batch, NumHeads, "total_sequence_length", HeadDim]));
            outputs.Add(OnnxBuilder.TensorValueInfo("present.0.value", DataType.Float, [Batch, NumHeads, "total_sequence_length", HeadDim]));
            foreach (var past in inputs.Where(i => i.Name.StartsWith("past_key_values", StringComparison.Ordinal)))
            {
                past.Type.TensorType.Shape.Dim[2].DimParam = "past_sequence_length";
            }
            if (KeyPaddingMask)
            {
                inputs.Single(i => i.Name == "key_padding_mask").Type.TensorType.Shape.Dim[1].DimParam = "total_sequence_length";
            }
        }
        return ContribModels.Model(nodes, inputs, outputs, initializers);
    }

    private IEnumerable<AttributeProto> RotaryAttributes()
    {
        if (Interleaved)
        {
            yield return OnnxBuilder.IntAttribute("interleaved", 1);
        }
        if (RotaryDim < HeadDim)
        {
            yield return OnnxBuilder.IntAttribute("rotary_embedding_dim", RotaryDim);
            yield return OnnxBuilder.IntAttribute("num_heads", NumHeads);
        }
    }

    private IEnumerable<AttributeProto> AttentionAttributes()
    {
        yield return OnnxBuilder.IntAttribute("num_heads", NumHeads);
        yield return OnnxBuilder.IntAttribute("unidirectional", Unidirectional ? 1 : 0);
        if (Scale > 0)
        {
            yield return OnnxBuilder.FloatAttribute("scale", Scale);
        }
    }
}
