using Onnx;
using OrtSparse.Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace OrtSparse.GraphRewriter;

/// <summary>
/// Gives a model exported without a KV cache (<c>input_ids → logits</c>) one, in ONNX Runtime GenAI's
/// naming: per layer L the inputs <c>past_key_values.L.key</c>/<c>.value</c> [batch_size, kv_heads,
/// past_sequence_length, head_size] and the outputs <c>present.L.key</c>/<c>.value</c>, wired to
/// SparseAttention in shared-buffer mode: two more inputs, <c>seqlens_k</c> (int32 [batch_size], the
/// keys after this step minus 1) and <c>total_sequence_length</c> (int32 scalar, the keys after this
/// step), tell the op where the step's keys go, so a runtime binds past and present to one buffer that
/// outlives the step and the op appends in place. Positions follow the cache: the op's rotary embedding
/// uses its default positions past_length + i, and every <c>Range(0, sequence_length)</c> still in the
/// graph (a learned position embedding's lookup, GPT-2) becomes <c>Range(total − sequence_length, total)</c>.
/// The model keeps no attention_mask input: a batch is sequences of equal length without padding.
/// </summary>
internal static class KvCacheAddition
{
    /// <summary>Why the site cannot get a cache, or null.</summary>
    public static string? Problem(AttentionSite site, NodeProto attention)
    {
        if (site.PastKey is not null || site.PresentKey is not null)
        {
            return "it already has a cache";
        }
        if (attention.IntAttribute("is_causal") != 1)
        {
            return "it is not causal (a cache needs causal attention)";
        }
        if (attention.OptionalInput(SparseAttentionOp.InputIndex("attention_mask")) is { } mask)
        {
            return $"it reads the mask '{mask}', whose columns cover this step's keys only";
        }
        if (attention.OptionalInput(SparseAttentionOp.InputIndex("position_ids")) is { } positions)
        {
            return $"its rotary embedding reads the position ids '{positions}' of this step, which do not follow the cache";
        }
        if (site.KvNumHeads is null || site.HeadDim is null)
        {
            return "its key/value heads or head size is unknown";
        }
        return site.ElementType is "float" or "float16" ? null : $"its element type ({site.ElementType}) is unknown";
    }

    /// <summary>The graph inputs every layer's op reads its cache lengths from.</summary>
    /// <param name="SeqlensK">int32 [batch_size]: keys of each sequence after this step, minus 1.</param>
    /// <param name="TotalSequenceLength">int32 scalar: keys after this step.</param>
    public sealed record Lengths(string SeqlensK, string TotalSequenceLength)
    {
        /// <summary>Allocates the two input names in <paramref name="names"/>.</summary>
        public static Lengths Allocate(NameAllocator names) => new(names.Fresh("seqlens_k"), names.Fresh("total_sequence_length"));
    }

    /// <summary>Wires layer <paramref name="layer"/>'s cache into <paramref name="attention"/> and returns the site with its cache names.</summary>
    public static AttentionSite Wire(AttentionSite site, NodeProto attention, int layer, Lengths lengths, NameAllocator names)
    {
        var pastKey = names.Fresh($"past_key_values.{layer}.key");
        var pastValue = names.Fresh($"past_key_values.{layer}.value");
        var presentKey = names.Fresh($"present.{layer}.key");
        var presentValue = names.Fresh($"present.{layer}.value");
        SetSlot(attention.Input, SparseAttentionOp.InputIndex("past_key"), pastKey);
        SetSlot(attention.Input, SparseAttentionOp.InputIndex("past_value"), pastValue);
        SetSlot(attention.Output, SparseAttentionOp.OutputNames.ToList().IndexOf("present_key"), presentKey);
        SetSlot(attention.Output, SparseAttentionOp.OutputNames.ToList().IndexOf("present_value"), presentValue);
        SetSlot(attention.Input, SparseAttentionOp.InputIndex("seqlens_k"), lengths.SeqlensK);
        SetSlot(attention.Input, SparseAttentionOp.InputIndex("total_sequence_length"), lengths.TotalSequenceLength);
        return site with { PastKey = pastKey, PastValue = pastValue, PresentKey = presentKey, PresentValue = presentValue };
    }

    /// <summary>Declares the length inputs and the cache inputs and outputs of <paramref name="sites"/> (in layer order) on the graph.</summary>
    public static void Declare(GraphProto graph, IReadOnlyList<AttentionSite> sites, Lengths lengths)
    {
        graph.Input.Add(OnnxBuilder.TensorValueInfo(lengths.SeqlensK, DataType.Int32, ["batch_size"]));
        graph.Input.Add(OnnxBuilder.TensorValueInfo(lengths.TotalSequenceLength, DataType.Int32, []));
        foreach (var site in sites)
        {
            var type = site.ElementType == "float16" ? DataType.Float16 : DataType.Float;
            Dim[] past = ["batch_size", site.KvNumHeads!.Value, "past_sequence_length", site.HeadDim!.Value];
            Dim[] present = ["batch_size", site.KvNumHeads.Value, "total_sequence_length", site.HeadDim.Value];
            graph.Input.Add(OnnxBuilder.TensorValueInfo(site.PastKey!, type, past));
            graph.Input.Add(OnnxBuilder.TensorValueInfo(site.PastValue!, type, past));
            graph.Output.Add(OnnxBuilder.TensorValueInfo(site.PresentKey!, type, present));
            graph.Output.Add(OnnxBuilder.TensorValueInfo(site.PresentValue!, type, present));
        }
    }

    /// <summary>
    /// Shifts every <c>Range(0, sequence_length, 1)</c> of the patched graph to
    /// <c>Range(total − sequence_length, total)</c>, total being <paramref name="lengths"/>' total sequence
    /// length; a Range qualifies when evaluating start, limit and delta for two input shapes shows it counts the sequence.
    /// </summary>
    /// <returns>The names of the Range nodes shifted.</returns>
    public static IReadOnlyList<string> ShiftPositions(ModelProto model, Lengths lengths, NameAllocator names)
    {
        var graph = model.Graph;
        var evaluator = new GraphEvaluator(graph, new GraphTypes(graph));
        var shifted = new List<string>();
        for (var i = 0; i < graph.Node.Count; i++)
        {
            var range = graph.Node[i];
            if (range.OpType != "Range" || !Opsets.IsOnnxDomain(range.Domain) || !CountsTheSequence(evaluator, graph, range))
            {
                continue;
            }
            var glue = new GraphGlue(model, names, range.Name.Length > 0 ? range.Name : $"Range_{i}");
            var total = glue.Op("Cast", "total_length", [lengths.TotalSequenceLength],
                attributes: OnnxBuilder.IntAttribute("to", (long)(evaluator.Constant(range.Input[0])?.Type ?? DataType.Int64)));
            var pastLength = glue.Op("Sub", "past_length", [total, range.Input[1]]);
            var limit = total;
            var oldStart = range.Input[0];
            range.Input[0] = pastLength;
            if (graph.Node.All(n => !n.Input.Contains(oldStart)) && graph.Initializer.FirstOrDefault(t => t.Name == oldStart) is { } unused)
            {
                graph.Initializer.Remove(unused);
            }
            range.Input[1] = limit;
            for (var g = glue.Nodes.Count - 1; g >= 0; g--)
            {
                graph.Node.Insert(i, glue.Nodes[g]);
            }
            i += glue.Nodes.Count;
            shifted.Add(SiteFacts.Label(range, i));
        }
        return shifted;
    }

    /// <summary>True when the Range counts 0, 1, … sequence_length − 1 (checked for two input shapes).</summary>
    private static bool CountsTheSequence(GraphEvaluator evaluator, GraphProto graph, NodeProto range)
    {
        if (evaluator.Constant(range.Input[0]) is not { Data: [0] } || evaluator.Constant(range.Input[2]) is not { Data: [1] })
        {
            return false;
        }
        foreach (var (batch, length) in new[] { (1L, 3L), (2L, 7L) })
        {
            if (evaluator.TryEvaluate(range.Input[1], GraphEvaluator.SequenceShapes(graph, batch, length), out _) is not { Data: [var limit] } || limit != length)
            {
                return false;
            }
        }
        return true;
    }

    private static void SetSlot(Google.Protobuf.Collections.RepeatedField<string> slots, int index, string name)
    {
        while (slots.Count <= index)
        {
            slots.Add("");
        }
        slots[index] = name;
    }
}
