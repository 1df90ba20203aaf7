using Onnx;
using OrtSparse.Onnx;

namespace OrtSparse.GraphRewriter;

/// <summary>
/// Gives a SparseAttention node what its method needs beyond attributes: state inputs and outputs
/// beside the KV cache, and calibration tensors as initializers (docs/ops.md, "Methods").
/// Independent of the attention form the node replaced.
/// </summary>
internal static class MethodWiring
{
    /// <summary>One calibration tensor for a site: the method_data slot it feeds and its contents.</summary>
    public sealed record CalibrationInput(int Slot, string Name, long[] Shape, float[] Data);

    /// <summary>Adds state graph inputs/outputs (when the site has a cache) and calibration initializers to <paramref name="node"/>.</summary>
    /// <param name="graph">The graph being patched.</param>
    /// <param name="node">The SparseAttention node.</param>
    /// <param name="site">The site it replaces.</param>
    /// <param name="method">The method.</param>
    /// <param name="calibration">The calibration tensors of this site, in slot order.</param>
    /// <param name="stateWidth">The last dimension of the method's state tensor.</param>
    /// <param name="names">Fresh names.</param>
    /// <returns>The state tensors added, or null.</returns>
    public static MethodStateTensors? Apply(GraphProto graph, NodeProto node, AttentionSite site, MethodConfig method,
        IReadOnlyList<CalibrationInput> calibration, long stateWidth, NameAllocator names)
    {
        foreach (var input in calibration)
        {
            var name = names.Fresh($"{site.NodeName}/ortsparse/{input.Name}");
            graph.Initializer.Add(OnnxTensor.Create(name, input.Data, input.Shape));
            SetInput(node, SparseAttentionOp.InputIndex($"method_data_{input.Slot}"), name);
        }

        if (StateNames(site, method) is not { } planned)
        {
            return null; // without a cache the op keeps the state in scratch memory
        }
        var slot = SlotOf(method.Spec.State);
        var elementType = method.Spec.State == MethodState.Index ? TensorProto.Types.DataType.Int32
            : site.ElementType == "float16" ? TensorProto.Types.DataType.Float16 : TensorProto.Types.DataType.Float;
        var kvHeads = site.KvNumHeads!.Value;
        var pastName = names.Fresh(planned.Input);
        // An empty default: callers that do not feed the state back get it rebuilt from the cache each step.
        graph.Initializer.Add(EmptyState(pastName, elementType, kvHeads, stateWidth));
        graph.Input.Add(OnnxBuilder.TensorValueInfo(pastName, elementType, ["batch_size", kvHeads, "past_state_length", stateWidth]));
        SetInput(node, SparseAttentionOp.InputIndex($"past_{slot}"), pastName);
        string? presentName = null;
        if (planned.Output is { } output)
        {
            presentName = names.Fresh(output);
            SetOutput(node, SparseAttentionOp.OutputNames.ToList().IndexOf($"present_{slot}"), presentName);
            graph.Output.Add(OnnxBuilder.TensorValueInfo(presentName, elementType, ["batch_size", kvHeads, "present_state_length", stateWidth]));
        }
        return new MethodStateTensors(slot, pastName, presentName, SiteFacts.ElementTypeName(elementType), kvHeads, stateWidth);
    }

    /// <summary>
    /// The state input and output a method adds beside the site's cache, as named before they are made
    /// unique in the graph; null when the method keeps no state or the site has no cache. The output is
    /// null when the site has no present cache.
    /// </summary>
    public static (string Input, string? Output)? StateNames(AttentionSite site, MethodConfig method)
    {
        if (method.Spec.State == MethodState.None || site.PastKey is null)
        {
            return null;
        }
        var suffix = $"ortsparse_{SlotOf(method.Spec.State)}";
        return (StateName(site.PastKey, suffix), site.PresentKey is null ? null : StateName(site.PresentKey, suffix));
    }

    /// <summary>The op's state slot: "index" (int32) or "summary" (the attention's element type).</summary>
    private static string SlotOf(MethodState state) => state == MethodState.Index ? "index" : "summary";

    /// <summary><c>past_key_values.0.key</c> → <c>past_key_values.0.ortsparse_index</c>; other names get the suffix appended.</summary>
    private static string StateName(string cacheName, string suffix) =>
        cacheName.EndsWith(".key", StringComparison.Ordinal) ? cacheName[..^"key".Length] + suffix : $"{cacheName}.{suffix}";

    private static TensorProto EmptyState(string name, TensorProto.Types.DataType type, long kvHeads, long width)
    {
        var tensor = new TensorProto { Name = name, DataType = (int)type };
        tensor.Dims.Add([1, kvHeads, 0, width]);
        return tensor;
    }

    private static void SetInput(NodeProto node, int index, string name)
    {
        while (node.Input.Count <= index)
        {
            node.Input.Add("");
        }
        node.Input[index] = name;
    }

    private static void SetOutput(NodeProto node, int index, string name)
    {
        while (node.Output.Count <= index)
        {
            node.Output.Add("");
        }
        node.Output[index] = name;
    }
}
