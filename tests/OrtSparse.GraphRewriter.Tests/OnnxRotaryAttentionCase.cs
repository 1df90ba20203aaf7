using Onnx;
using OrtSparse.Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>Where the cos and sin values of an ONNX RotaryEmbedding come from.</summary>
public enum RotaryTables
{
    /// <summary>[max_position, R/2] initializers indexed by a position_ids input of the RotaryEmbedding nodes.</summary>
    PositionTable,

    /// <summary>This step's rows [B, S, R/2], computed in the graph from position_ids [B, S]; the RotaryEmbedding nodes take no position_ids.</summary>
    StepRows,

    /// <summary>
    /// This step's rows computed from position_ids [1, S], one sequence's rows broadcast over the batch, as
    /// torch.onnx.export(dynamo=True, opset_version=23) emits them; ONNX Runtime 1.29's RotaryEmbedding rejects them.
    /// </summary>
    BroadcastRows,
}

/// <summary>
/// One ONNX Attention step (opset 23/24, a concat cache past_key → present_key) whose Q and K come
/// from ONNX RotaryEmbedding nodes (opset 23), as torch.onnx.export(dynamo=True, opset_version=23)
/// emits SDPA decoders; and the plain-loop rotary embedding and attention its outputs must equal.
/// </summary>
public sealed record OnnxRotaryAttentionCase
{
    /// <summary>B.</summary>
    public int Batch { get; init; } = 1;

    /// <summary>S (= new keys).</summary>
    public int QueryLength { get; init; } = 1;

    /// <summary>P: cached keys (the model always has past inputs).</summary>
    public int PastLength { get; init; }

    /// <summary>Query heads.</summary>
    public int NumHeads { get; init; } = 4;

    /// <summary>Key/value heads.</summary>
    public int KvNumHeads { get; init; } = 2;

    /// <summary>D.</summary>
    public int HeadDim { get; init; } = 16;

    /// <summary>R: HeadDim rotates whole heads, less sets rotary_embedding_dim.</summary>
    public int RotaryDim { get; init; } = 16;

    /// <summary>RotaryEmbedding's interleaved.</summary>
    public bool Interleaved { get; init; }

    /// <summary>3 for [B, S, H·D] Q, K and V, 4 for [B, H, S, D].</summary>
    public int Rank { get; init; } = 4;

    /// <summary>Where cos and sin come from.</summary>
    public RotaryTables Tables { get; init; }

    /// <summary>The ONNX opset (23 or 24).</summary>
    public int Opset { get; init; } = 23;

    /// <summary>Rows of the cos and sin tables.</summary>
    public const int MaxPositions = 64;

    /// <summary>A short label for test names.</summary>
    public override string ToString() =>
        $"B{Batch} S{QueryLength} P{PastLength} H{NumHeads}/{KvNumHeads} D{HeadDim} rotary{RotaryDim}{(Interleaved ? "i" : "")} {Rank}-D {Tables} opset{Opset}";

    private int PositionRows => Tables == RotaryTables.BroadcastRows ? 1 : Batch;

    /// <summary>Position of row <paramref name="s"/> of sequence <paramref name="b"/>: after the cache, sequence b starting b later (shared with broadcast rows).</summary>
    private long Position(int b, int s) => PastLength + s + (Tables == RotaryTables.BroadcastRows ? 0 : b);

    private long[] Shape(int heads, int length, int dim) => Rank == 3 ? [Batch, length, heads * dim] : [Batch, heads, length, dim];

    /// <summary>The inputs of the model, seeded.</summary>
    public IReadOnlyList<Feed> Feeds(int seed)
    {
        var random = new Random(seed);
        Feed Floats(string name, params long[] shape) => new(name, DataType.Float, shape, ContribModels.Uniform(random, shape.Aggregate(1L, (a, d) => a * d)));
        return
        [
            Floats("query_in", Shape(NumHeads, QueryLength, HeadDim)),
            Floats("key_in", Shape(KvNumHeads, QueryLength, HeadDim)),
            Floats("value", Shape(KvNumHeads, QueryLength, HeadDim)),
            Floats("past_key", Batch, KvNumHeads, PastLength, HeadDim),
            Floats("past_value", Batch, KvNumHeads, PastLength, HeadDim),
            new Feed("position_ids", DataType.Int64, [PositionRows, QueryLength],
                Enumerable.Range(0, PositionRows * QueryLength).Select(i => Position(i / QueryLength, i % QueryLength)).ToArray()),
        ];
    }

    /// <summary>The model: cos/sin (a table, or rows computed from position_ids), two RotaryEmbedding nodes and Attention.</summary>
    public ModelProto BuildModel()
    {
        var inputs = Feeds(0).Select(f => f.ValueInfo()).ToList();
        var nodes = new List<NodeProto>();
        var initializers = new List<TensorProto>();
        var valueInfo = new List<ValueInfoProto>();
        string cos, sin;
        if (Tables == RotaryTables.PositionTable)
        {
            var (cosTable, sinTable) = ContribModels.RotaryTables(MaxPositions, RotaryDim);
            initializers.AddRange([cosTable, sinTable]);
            (cos, sin) = (cosTable.Name, sinTable.Name);
        }
        else
        {
            // freqs[b, s, i] = position_ids[b, s] · θ_i, as the exporter computes Llama's rotary embedding.
            var inverseFrequencies = Enumerable.Range(0, RotaryDim / 2).Select(i => (float)Math.Pow(10000, -2.0 * i / RotaryDim)).ToArray();
            initializers.Add(OnnxTensor.Create("inv_freq", inverseFrequencies, RotaryDim / 2));
            initializers.Add(OnnxTensor.Create("unsqueeze_axes", [2L], 1));
            nodes.Add(OnnxBuilder.Node("Cast", ["position_ids"], ["positions"], [OnnxBuilder.IntAttribute("to", (long)DataType.Float)], "/rotary/Cast"));
            nodes.Add(OnnxBuilder.Node("Unsqueeze", ["positions", "unsqueeze_axes"], ["positions_bs1"], name: "/rotary/Unsqueeze"));
            nodes.Add(OnnxBuilder.Node("Mul", ["positions_bs1", "inv_freq"], ["freqs"], name: "/rotary/Mul"));
            nodes.Add(OnnxBuilder.Node("Cos", ["freqs"], ["cos"], name: "/rotary/Cos"));
            nodes.Add(OnnxBuilder.Node("Sin", ["freqs"], ["sin"], name: "/rotary/Sin"));
            // The exporter declares the shapes of intermediate values.
            valueInfo.AddRange(new[] { "cos", "sin" }.Select(n => OnnxBuilder.TensorValueInfo(n, DataType.Float, [PositionRows, QueryLength, RotaryDim / 2])));
            (cos, sin) = ("cos", "sin");
        }
        foreach (var (role, heads) in new[] { ("query", NumHeads), ("key", KvNumHeads) })
        {
            var rotaryInputs = Tables == RotaryTables.PositionTable ? new[] { $"{role}_in", cos, sin, "position_ids" } : [$"{role}_in", cos, sin];
            nodes.Add(OnnxBuilder.Node("RotaryEmbedding", rotaryInputs, [role], RotaryAttributes(heads), $"/layers.0/attn/{role}_rotary"));
        }
        var attentionAttributes = new List<AttributeProto> { OnnxBuilder.IntAttribute("is_causal", 1) };
        if (Rank == 3)
        {
            attentionAttributes.Add(OnnxBuilder.IntAttribute("q_num_heads", NumHeads));
            attentionAttributes.Add(OnnxBuilder.IntAttribute("kv_num_heads", KvNumHeads));
        }
        nodes.Add(OnnxBuilder.Node("Attention", ["query", "key", "value", "", "past_key", "past_value"], ["output", "present_key", "present_value"],
            attentionAttributes, "/layers.0/attn/Attention"));
        var total = PastLength + QueryLength;
        var outputs = new[]
        {
            OnnxBuilder.TensorValueInfo("output", DataType.Float, Shape(NumHeads, QueryLength, HeadDim).Select(d => (Dim)d)),
            OnnxBuilder.TensorValueInfo("present_key", DataType.Float, [Batch, KvNumHeads, total, HeadDim]),
            OnnxBuilder.TensorValueInfo("present_value", DataType.Float, [Batch, KvNumHeads, total, HeadDim]),
        };
        var graph = OnnxBuilder.Graph("rotary_attention", nodes, inputs, outputs, initializers);
        graph.ValueInfo.Add(valueInfo);
        var model = OnnxBuilder.Model(graph, [OnnxBuilder.Opset("", Opset)]);
        model.ProducerName = "pytorch";
        return model;
    }

    private IEnumerable<AttributeProto> RotaryAttributes(int heads)
    {
        if (Interleaved)
        {
            yield return OnnxBuilder.IntAttribute("interleaved", 1);
        }
        if (RotaryDim < HeadDim)
        {
            yield return OnnxBuilder.IntAttribute("rotary_embedding_dim", RotaryDim);
        }
        if (Rank == 3)
        {
            yield return OnnxBuilder.IntAttribute("num_heads", heads);
        }
    }

    /// <summary>
    /// The outputs computed with plain loops from <paramref name="feeds"/>, independently of ONNX Runtime and
    /// of the op: Q and K rotated by θ_i = 10000^(−2i/R) at their positions, then causal attention of each query
    /// head over the cache followed by the rotated new keys of its group (scale 1/√D).
    /// </summary>
    public Dictionary<string, (long[] Shape, double[] Data)> Expected(IReadOnlyList<Feed> feeds)
    {
        float[] Input(string name) => (float[])feeds.Single(f => f.Name == name).Data;
        var positions = (long[])feeds.Single(f => f.Name == "position_ids").Data;
        int B = Batch, S = QueryLength, P = PastLength, T = P + S, D = HeadDim, group = NumHeads / KvNumHeads;
        var query = Rotated(Input("query_in"), NumHeads, positions);
        var key = Rotated(Input("key_in"), KvNumHeads, positions);
        var value = ToHeads(Input("value"), KvNumHeads);
        var presentKey = Concat(Input("past_key"), key);
        var presentValue = Concat(Input("past_value"), value);
        var output = new double[B * NumHeads * S * D];
        for (var b = 0; b < B; b++)
        {
            for (var h = 0; h < NumHeads; h++)
            {
                var g = h / group;
                for (var i = 0; i < S; i++)
                {
                    var visible = P + i + 1;
                    var scores = new double[visible];
                    for (var j = 0; j < visible; j++)
                    {
                        for (var d = 0; d < D; d++)
                        {
                            scores[j] += query[((b * NumHeads + h) * S + i) * D + d] * presentKey[((b * KvNumHeads + g) * T + j) * D + d];
                        }
                        scores[j] /= Math.Sqrt(D);
                    }
                    var max = scores.Max();
                    var weights = scores.Select(s => Math.Exp(s - max)).ToArray();
                    var sum = weights.Sum();
                    for (var d = 0; d < D; d++)
                    {
                        var row = Rank == 3 ? ((b * S + i) * NumHeads + h) * D + d : ((b * NumHeads + h) * S + i) * D + d;
                        output[row] = Enumerable.Range(0, visible).Sum(j => weights[j] / sum * presentValue[((b * KvNumHeads + g) * T + j) * D + d]);
                    }
                }
            }
        }
        return new()
        {
            ["output"] = (Shape(NumHeads, S, D), output),
            ["present_key"] = ([B, KvNumHeads, T, D], presentKey),
            ["present_value"] = ([B, KvNumHeads, T, D], presentValue),
        };
    }

    /// <summary>[B, H, S, D] from the input layout.</summary>
    private double[] ToHeads(float[] input, int heads)
    {
        int S = QueryLength, D = HeadDim;
        var result = new double[input.Length];
        for (var b = 0; b < Batch; b++)
        {
            for (var h = 0; h < heads; h++)
            {
                for (var s = 0; s < S; s++)
                {
                    for (var d = 0; d < D; d++)
                    {
                        result[((b * heads + h) * S + s) * D + d] = input[Rank == 3 ? ((b * S + s) * heads + h) * D + d : ((b * heads + h) * S + s) * D + d];
                    }
                }
            }
        }
        return result;
    }

    /// <summary>[B, H, S, D] rotated: pairs (x[i], x[i + R/2]), or (x[2i], x[2i + 1]) when interleaved, turned by position·θ_i; dims from R on unchanged.</summary>
    private double[] Rotated(float[] input, int heads, long[] positions)
    {
        var x = ToHeads(input, heads);
        int S = QueryLength, D = HeadDim, half = RotaryDim / 2;
        var result = (double[])x.Clone();
        for (var b = 0; b < Batch; b++)
        {
            for (var h = 0; h < heads; h++)
            {
                for (var s = 0; s < S; s++)
                {
                    var position = positions[(PositionRows == 1 ? 0 : b) * S + s];
                    var offset = ((b * heads + h) * S + s) * D;
                    for (var i = 0; i < half; i++)
                    {
                        var angle = position * Math.Pow(10000, -2.0 * i / RotaryDim);
                        var (first, second) = Interleaved ? (offset + 2 * i, offset + 2 * i + 1) : (offset + i, offset + i + half);
                        result[first] = x[first] * Math.Cos(angle) - x[second] * Math.Sin(angle);
                        result[second] = x[first] * Math.Sin(angle) + x[second] * Math.Cos(angle);
                    }
                }
            }
        }
        return result;
    }

    /// <summary>past [B, H, P, D] followed by new [B, H, S, D] along the sequence.</summary>
    private double[] Concat(float[] past, double[] added)
    {
        int S = QueryLength, P = PastLength, T = P + S, D = HeadDim;
        var result = new double[Batch * KvNumHeads * T * D];
        for (var bh = 0; bh < Batch * KvNumHeads; bh++)
        {
            for (var t = 0; t < T; t++)
            {
                for (var d = 0; d < D; d++)
                {
                    result[(bh * T + t) * D + d] = t < P ? past[(bh * P + t) * D + d] : added[(bh * S + t - P) * D + d];
                }
            }
        }
        return result;
    }
}
