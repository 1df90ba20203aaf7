using Onnx;
using OrtSparse.GraphRewriter;
using OrtSparse.Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace OrtSparse.Cli.Bench;

/// <summary>
/// Single-node models of one decode step that the benchmark binds: com.ortsparse.SparseAttention and
/// ONNX Runtime's com.microsoft.GroupQueryAttention. Both take the same inputs, which
/// <see cref="DecodeStep.Bind"/> binds: the new token's query, key and value [B, 1, H·D], the cache
/// [B, Hkv, T, D] as past_key/past_value and as present_key/present_value (one buffer, updated in
/// place), seqlens_k = T − 1 for every sequence and total_sequence_length = T.
/// </summary>
public static class DecodeStepModel
{
    /// <summary>A SparseAttention decode step with <paramref name="method"/>'s calibration as initializers, its state as past_state/present_state, and the selected_keys output if <paramref name="reportSelection"/>.</summary>
    /// <param name="s">Shapes and element type.</param>
    /// <param name="method">The method.</param>
    /// <param name="calibration">method_data_0.. (shape, values).</param>
    /// <param name="stateWidth">Width of the method's state rows (unused without state).</param>
    /// <param name="reportSelection">Add the selected_keys output (a diagnostic that costs a pass over the cache).</param>
    public static ModelProto SparseAttention(AttentionBenchSettings s, string method, IReadOnlyList<(long[] Shape, float[] Data)> calibration, long stateWidth,
        bool reportSelection)
    {
        ArgumentNullException.ThrowIfNull(s);
        ArgumentNullException.ThrowIfNull(calibration);
        var type = s.ElementType;
        var spec = MethodCatalog.Get(method);
        var inputs = StepInputs(s).ToList();
        var slots = new string[SparseAttentionOp.InputNames.Count];
        Array.Fill(slots, "");
        foreach (var input in inputs)
        {
            slots[SparseAttentionOp.InputIndex(input.Name)] = input.Name;
        }
        var outputs = new[] { "output", "present_key", "present_value", "", "", reportSelection ? "selected_keys" : "" };
        var stateType = spec.State == MethodState.Index ? DataType.Int32 : type;
        if (spec.State != MethodState.None)
        {
            var slot = spec.State == MethodState.Index ? "index" : "summary";
            slots[SparseAttentionOp.InputIndex($"past_{slot}")] = "past_state";
            outputs[SparseAttentionOp.OutputNames.ToList().IndexOf($"present_{slot}")] = "present_state";
            inputs.Add(OnnxBuilder.TensorValueInfo("past_state", stateType, [s.Batch, s.KvHeads, "state_rows", stateWidth]));
        }
        var initializers = calibration.Select((c, i) => OnnxTensor.Create($"method_data_{i}", c.Data, c.Shape)).ToList();
        for (var i = 0; i < initializers.Count; i++)
        {
            slots[SparseAttentionOp.InputIndex($"method_data_{i}")] = initializers[i].Name;
        }
        var attributes = new List<AttributeProto>
        {
            OnnxBuilder.IntAttribute("num_heads", s.Heads),
            OnnxBuilder.IntAttribute("kv_num_heads", s.KvHeads),
            OnnxBuilder.StringAttribute("method", method),
        };
        if (spec.Parameters.Any(p => p.Name == "budget"))
        {
            attributes.Add(OnnxBuilder.FloatAttribute("budget", (float)s.Budget));
        }
        var node = OnnxBuilder.Node(SparseAttentionOp.OpType, WithoutTrailingBlanks(slots), WithoutTrailingBlanks(outputs), attributes, "attention", SparseAttentionOp.Domain);
        var graphOutputs = outputs.Where(o => o.Length > 0).Select(o => OnnxBuilder.TensorValueInfo(o,
            o == "selected_keys" ? DataType.Bool : o == "present_state" ? stateType : type, null));
        var graph = OnnxBuilder.Graph("bench_step", [node], inputs, graphOutputs, initializers);
        return OnnxBuilder.Model(graph, [OnnxBuilder.Opset("", 23), OnnxBuilder.Opset(SparseAttentionOp.Domain, SparseAttentionOp.DomainVersion)]);
    }

    /// <summary>
    /// ONNX Runtime's GroupQueryAttention on the same step, as ONNX Runtime GenAI runs it: past and
    /// present bound to one buffer of T positions (its past_present_share_buffer mode, which it
    /// enters when the two are the same memory), no rotary embedding, default scale 1/√D.
    /// </summary>
    /// <param name="s">Shapes and element type.</param>
    public static ModelProto GroupQueryAttention(AttentionBenchSettings s)
    {
        ArgumentNullException.ThrowIfNull(s);
        var inputs = StepInputs(s);
        var node = OnnxBuilder.Node("GroupQueryAttention", inputs.Select(i => i.Name), ["output", "present_key", "present_value"],
            [OnnxBuilder.IntAttribute("num_heads", s.Heads), OnnxBuilder.IntAttribute("kv_num_heads", s.KvHeads)], "attention", "com.microsoft");
        long[] cache = [s.Batch, s.KvHeads, s.Context, s.HeadDim];
        var outputs = new[]
        {
            OnnxBuilder.TensorValueInfo("output", s.ElementType, [s.Batch, 1, s.Heads * s.HeadDim]),
            OnnxBuilder.TensorValueInfo("present_key", s.ElementType, cache.Select(d => (Dim)d)),
            OnnxBuilder.TensorValueInfo("present_value", s.ElementType, cache.Select(d => (Dim)d)),
        };
        var graph = OnnxBuilder.Graph("bench_step_gqa", [node], inputs, outputs, []);
        return OnnxBuilder.Model(graph, [OnnxBuilder.Opset("", 23), OnnxBuilder.Opset("com.microsoft", 1)]);
    }

    /// <summary>The inputs both ops take, in the order of their first seven inputs.</summary>
    private static IReadOnlyList<ValueInfoProto> StepInputs(AttentionBenchSettings s) =>
    [
        OnnxBuilder.TensorValueInfo("query", s.ElementType, [s.Batch, 1, s.Heads * s.HeadDim]),
        OnnxBuilder.TensorValueInfo("key", s.ElementType, [s.Batch, 1, s.KvHeads * s.HeadDim]),
        OnnxBuilder.TensorValueInfo("value", s.ElementType, [s.Batch, 1, s.KvHeads * s.HeadDim]),
        OnnxBuilder.TensorValueInfo("past_key", s.ElementType, [s.Batch, s.KvHeads, s.Context, s.HeadDim]),
        OnnxBuilder.TensorValueInfo("past_value", s.ElementType, [s.Batch, s.KvHeads, s.Context, s.HeadDim]),
        OnnxBuilder.TensorValueInfo("seqlens_k", DataType.Int32, [s.Batch]),
        OnnxBuilder.TensorValueInfo("total_sequence_length", DataType.Int32, []),
    ];

    /// <summary>Node input or output names without the empty slots at the end (ONNX omits trailing optional slots).</summary>
    internal static IEnumerable<string> WithoutTrailingBlanks(IEnumerable<string> names) => names.Reverse().SkipWhile(n => n.Length == 0).Reverse();
}
