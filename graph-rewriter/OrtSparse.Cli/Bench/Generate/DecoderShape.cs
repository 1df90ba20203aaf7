using DataType = Onnx.TensorProto.Types.DataType;

namespace OrtSparse.Cli.Bench.Generate;

/// <summary>
/// The dimensions of a Llama-architecture decoder that <see cref="DecoderModelWriter"/> writes:
/// <see cref="Layers"/> blocks of RMSNorm, grouped-query attention with a rotary embedding, RMSNorm
/// and a SwiGLU MLP, between a token embedding and an untied lm_head; random weights drawn from <see cref="Seed"/>.
/// </summary>
public sealed record DecoderShape
{
    /// <summary>Decoder blocks (num_hidden_layers).</summary>
    public int Layers { get; init; } = 2;

    /// <summary>Width of the residual stream (hidden_size).</summary>
    public int Hidden { get; init; } = 64;

    /// <summary>Query heads (num_attention_heads).</summary>
    public int Heads { get; init; } = 4;

    /// <summary>Key/value heads (num_key_value_heads); <see cref="Heads"/> must be a multiple of it.</summary>
    public int KvHeads { get; init; } = 2;

    /// <summary>Head size D; a multiple of 16 (ONNX Runtime's CPU GroupQueryAttention rotates only such heads).</summary>
    public int HeadSize { get; init; } = 16;

    /// <summary>Width of the MLP (intermediate_size).</summary>
    public int Intermediate { get; init; } = 128;

    /// <summary>Vocabulary size.</summary>
    public int Vocab { get; init; } = 256;

    /// <summary>Longest sequence, prompt and generated tokens together (context_length, the rotary tables' rows).</summary>
    public int MaxLength { get; init; } = 128;

    /// <summary>Weights, activations, caches and logits: Float or Float16.</summary>
    public DataType ElementType { get; init; } = DataType.Float;

    /// <summary>Seed of the random weights; the same shape and seed give the same model.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>The parameters of the model: embedding, per-layer projections and norms, final norm, lm_head.</summary>
    public long ParameterCount
    {
        get
        {
            long hidden = Hidden, attention = (long)Heads * HeadSize, kv = (long)KvHeads * HeadSize;
            var perLayer = hidden * attention + 2 * hidden * kv + attention * hidden + 3 * hidden * Intermediate + 2 * hidden;
            return 2 * Vocab * hidden + Layers * perLayer + hidden;
        }
    }

    /// <summary>Bytes of the weights and rotary tables as stored.</summary>
    public long WeightBytes => (ParameterCount + (long)MaxLength * HeadSize) * ElementSize;

    /// <summary>Bytes of one element of <see cref="ElementType"/>.</summary>
    public int ElementSize => ElementType == DataType.Float16 ? 2 : 4;

    /// <summary>
    /// Throws an <see cref="ArgumentException"/> naming the first dimension that no model can have,
    /// with its value; returns this shape otherwise.
    /// </summary>
    public DecoderShape Validate()
    {
        void Positive(int value, string name)
        {
            if (value <= 0)
            {
                throw new ArgumentException($"{name} ({value}) must be positive");
            }
        }
        Positive(Layers, "layers");
        Positive(Hidden, "hidden");
        Positive(Heads, "heads");
        Positive(KvHeads, "kv heads");
        Positive(HeadSize, "head size");
        Positive(Intermediate, "intermediate");
        Positive(Vocab, "vocab");
        Positive(MaxLength, "max length");
        if (Heads % KvHeads != 0)
        {
            throw new ArgumentException($"heads ({Heads}) must be a multiple of kv heads ({KvHeads})");
        }
        if (HeadSize % 16 != 0)
        {
            throw new ArgumentException($"head size ({HeadSize}) must be a multiple of 16: the rotary embedding of ONNX Runtime's CPU GroupQueryAttention needs it");
        }
        if (ElementType is not (DataType.Float or DataType.Float16))
        {
            throw new ArgumentException($"element type ({ElementType}) must be Float or Float16");
        }
        if (Vocab < 2)
        {
            throw new ArgumentException($"vocab ({Vocab}) must hold the end-of-sequence token and at least one other");
        }
        return this;
    }

    /// <summary>A short label: layers, widths, heads, vocabulary, length and type.</summary>
    public override string ToString() =>
        $"L{Layers} h{Hidden} H{Heads}/{KvHeads} D{HeadSize} ff{Intermediate} V{Vocab} T{MaxLength} {(ElementType == DataType.Float16 ? "fp16" : "fp32")} seed{Seed}";
}
