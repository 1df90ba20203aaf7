using Microsoft.ML.OnnxRuntime;
using Onnx;
using OrtSparse.Onnx;

namespace OrtSparse.Cli.Bench;

/// <summary>How a case masks attention scores.</summary>
public enum MaskKind
{
    /// <summary>No attn_mask input.</summary>
    None,

    /// <summary>A boolean mask (true = attend).</summary>
    Bool,

    /// <summary>An additive mask of the model's element type.</summary>
    Additive,
}

/// <summary>
/// One attention configuration: it builds the single-node ONNX <c>Attention</c> model and seeded
/// inputs for it. The same cases drive the equivalence tests (ONNX Runtime's own kernel against our
/// patched model) and the benchmark.
/// </summary>
public sealed record AttentionCase
{
    /// <summary>Batch size B.</summary>
    public int Batch { get; init; } = 1;

    /// <summary>Query length S.</summary>
    public int QueryLength { get; init; } = 1;

    /// <summary>New keys per step, S_kv (equals S for self-attention).</summary>
    public int? KeyLength { get; init; }

    /// <summary>Cached keys P; 0 means the model has no past inputs.</summary>
    public int PastLength { get; init; }

    /// <summary>Give past_key/past_value inputs even when <see cref="PastLength"/> is 0.</summary>
    public bool WithCache { get; init; }

    /// <summary>Query heads.</summary>
    public int NumHeads { get; init; } = 4;

    /// <summary>Key/value heads.</summary>
    public int KvNumHeads { get; init; } = 4;

    /// <summary>Query/key head size D.</summary>
    public int HeadDim { get; init; } = 64;

    /// <summary>Value head size Dv; null means D.</summary>
    public int? ValueHeadDim { get; init; }

    /// <summary>3 for [B, S, H·D] inputs, 4 for [B, H, S, D].</summary>
    public int Rank { get; init; } = 3;

    /// <summary>The is_causal attribute.</summary>
    public bool IsCausal { get; init; } = true;

    /// <summary>The attn_mask input, if any.</summary>
    public MaskKind Mask { get; init; }

    /// <summary>Rank of the mask (2 to 4); its leading dims are 1 except the batch dim for rank 4.</summary>
    public int MaskRank { get; init; } = 2;

    /// <summary>The scale attribute, if set.</summary>
    public float? Scale { get; init; }

    /// <summary>The softcap attribute, if set.</summary>
    public float? Softcap { get; init; }

    /// <summary>Float or Float16.</summary>
    public TensorProto.Types.DataType ElementType { get; init; } = TensorProto.Types.DataType.Float;

    /// <summary>The ONNX opset the model imports (23 or 24).</summary>
    public int Opset { get; init; } = 23;

    /// <summary>A tensor value info with fixed dims.</summary>
    public static ValueInfoProto ValueInfo(string name, TensorProto.Types.DataType type, long[] shape) =>
        OnnxBuilder.TensorValueInfo(name, type, shape.Select(d => (Dim)d));

    private int KvLength => KeyLength ?? QueryLength;
    private int Dv => ValueHeadDim ?? HeadDim;
    private bool HasPast => PastLength > 0 || WithCache;

    /// <summary>A short label for test names and tables.</summary>
    public override string ToString() =>
        $"B{Batch} S{QueryLength}{(KeyLength is { } k ? $" Skv{k}" : "")} P{PastLength}{(HasPast ? "" : "(none)")} H{NumHeads}/{KvNumHeads} D{HeadDim}{(ValueHeadDim is { } v ? $"/{v}" : "")} " +
        $"{Rank}-D{(IsCausal ? " causal" : "")}{(Mask != MaskKind.None ? $" {Mask}-mask{MaskRank}" : "")}{(Scale is { } s ? $" scale{s}" : "")}{(Softcap is { } c ? $" softcap{c}" : "")} " +
        $"{ElementName} opset{Opset}";

    private string ElementName => ElementType == TensorProto.Types.DataType.Float16 ? "fp16" : "fp32";

    /// <summary>Input names and shapes of the model, in graph-input order.</summary>
    public IReadOnlyList<(string Name, long[] Shape, TensorProto.Types.DataType Type)> Inputs()
    {
        long[] Seq(int heads, int length, int dim) => Rank == 3 ? [Batch, length, heads * dim] : [Batch, heads, length, dim];
        var inputs = new List<(string, long[], TensorProto.Types.DataType)>
        {
            ("query", Seq(NumHeads, QueryLength, HeadDim), ElementType),
            ("key", Seq(KvNumHeads, KvLength, HeadDim), ElementType),
            ("value", Seq(KvNumHeads, KvLength, Dv), ElementType),
        };
        if (Mask != MaskKind.None)
        {
            long total = PastLength + KvLength;
            long[] shape = MaskRank switch
            {
                2 => [QueryLength, total],
                3 => [1, QueryLength, total],
                _ => [Batch, 1, QueryLength, total],
            };
            inputs.Add(("attn_mask", shape, Mask == MaskKind.Bool ? TensorProto.Types.DataType.Bool : ElementType));
        }
        if (HasPast)
        {
            inputs.Add(("past_key", [Batch, KvNumHeads, PastLength, HeadDim], ElementType));
            inputs.Add(("past_value", [Batch, KvNumHeads, PastLength, Dv], ElementType));
        }
        return inputs;
    }

    /// <summary>The single-node ONNX Attention model of this case.</summary>
    public ModelProto BuildModel()
    {
        var graph = new GraphProto { Name = "attention_case" };
        var inputs = Inputs();
        foreach (var (name, shape, type) in inputs)
        {
            graph.Input.Add(ValueInfo(name, type, shape));
        }
        var node = new NodeProto { OpType = "Attention", Name = "attention" };
        string Wire(string name) => inputs.Any(i => i.Name == name) ? name : "";
        node.Input.Add(new[] { "query", "key", "value", Wire("attn_mask"), Wire("past_key"), Wire("past_value") }.Reverse().SkipWhile(n => n == "").Reverse());
        node.Output.Add("output");
        graph.Output.Add(ValueInfo("output", ElementType, Rank == 3 ? [Batch, QueryLength, NumHeads * Dv] : [Batch, NumHeads, QueryLength, Dv]));
        if (HasPast)
        {
            node.Output.Add(["present_key", "present_value"]);
            graph.Output.Add(ValueInfo("present_key", ElementType, [Batch, KvNumHeads, PastLength + KvLength, HeadDim]));
            graph.Output.Add(ValueInfo("present_value", ElementType, [Batch, KvNumHeads, PastLength + KvLength, Dv]));
        }
        node.Attribute.Add(new AttributeProto { Name = "is_causal", Type = AttributeProto.Types.AttributeType.Int, I = IsCausal ? 1 : 0 });
        if (Rank == 3)
        {
            node.Attribute.Add(new AttributeProto { Name = "q_num_heads", Type = AttributeProto.Types.AttributeType.Int, I = NumHeads });
            node.Attribute.Add(new AttributeProto { Name = "kv_num_heads", Type = AttributeProto.Types.AttributeType.Int, I = KvNumHeads });
        }
        if (Scale is { } scale)
        {
            node.Attribute.Add(new AttributeProto { Name = "scale", Type = AttributeProto.Types.AttributeType.Float, F = scale });
        }
        if (Softcap is { } softcap)
        {
            node.Attribute.Add(new AttributeProto { Name = "softcap", Type = AttributeProto.Types.AttributeType.Float, F = softcap });
        }
        graph.Node.Add(node);
        var model = new ModelProto { IrVersion = 10, ProducerName = "ortsparse-tests", Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        return model;
    }

    /// <summary>Seeded inputs: values uniform in [-1, 1) (scores stay in a realistic range), masks with a few masked keys.</summary>
    /// <param name="seed">The random seed.</param>
    public Dictionary<string, OrtValue> CreateInputs(int seed)
    {
        var random = new Random(seed);
        var values = new Dictionary<string, OrtValue>();
        foreach (var (name, shape, type) in Inputs())
        {
            var count = (int)shape.Aggregate(1L, (a, d) => a * d);
            if (type == TensorProto.Types.DataType.Bool)
            {
                // Key 0 always visible, so no row is fully masked; about one key in five hidden.
                var mask = Enumerable.Range(0, count).Select(i => i % shape[^1] == 0 || random.NextDouble() > 0.2).ToArray();
                values[name] = OrtValue.CreateTensorValueFromMemory(mask, shape);
                continue;
            }
            var data = Enumerable.Range(0, count).Select(i => name == "attn_mask"
                ? (i % shape[^1] != 0 && random.NextDouble() < 0.2 ? -10000f : (float)random.NextDouble())
                : (float)(random.NextDouble() * 2 - 1)).ToArray();
            values[name] = type == TensorProto.Types.DataType.Float16
                ? OrtValue.CreateTensorValueFromMemory(data.Select(v => (Float16)v).ToArray(), shape)
                : OrtValue.CreateTensorValueFromMemory(data, shape);
        }
        return values;
    }
}
