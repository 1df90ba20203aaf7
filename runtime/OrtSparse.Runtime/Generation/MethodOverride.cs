using Google.Protobuf;
using Onnx;
using OrtSparse.Onnx;

namespace OrtSparse.Runtime.Generation;

/// <summary>
/// Changes the method of a patched model's SparseAttention nodes at load time, where that needs no
/// other inputs: any layer can run a method without state or calibration (<c>dense</c>, <c>topk</c>,
/// <c>streaming</c>; a stateful layer's state then passes through unused), and any layer can change its
/// selection parameters. Anything else needs <c>ortsparse patch</c> again.
/// </summary>
internal static class MethodOverride
{
    private static readonly string[] StatelessMethods = ["dense", "topk", "streaming"];
    private static readonly Dictionary<string, bool> SelectionParameters = new()
    {
        ["budget"] = false, ["sink"] = true, ["window"] = true, ["dense_below"] = true, // value: integer attribute
    };

    /// <summary>The model bytes with the override applied, and the layers as they now run.</summary>
    public static (byte[] Model, IReadOnlyList<LayerConfig> Layers) Apply(string modelPath, ModelConfig config, string? method,
        IReadOnlyDictionary<string, double>? parameters)
    {
        parameters ??= new Dictionary<string, double>();
        foreach (var name in parameters.Keys.Where(n => !SelectionParameters.ContainsKey(n)))
        {
            throw new ArgumentException(
                $"The parameter '{name}' cannot be changed at load time (only {string.Join(", ", SelectionParameters.Keys)}); patch the model again with it.");
        }
        var model = OnnxModel.Load(modelPath).Proto;
        var nodes = model.Graph.Node.ToDictionary(n => n.Name, n => n, StringComparer.Ordinal);
        var layers = new List<LayerConfig>();
        foreach (var layer in config.Layers)
        {
            var target = method ?? layer.Method;
            if (target != layer.Method && !StatelessMethods.Contains(target))
            {
                throw new ArgumentException(
                    $"Layer {layer.Layer} was patched with '{layer.Method}'; it can run {string.Join(", ", StatelessMethods)} or '{layer.Method}' without patching again, not '{target}'.");
            }
            if (!nodes.TryGetValue(layer.Node, out var node) || node.OpType != "SparseAttention")
            {
                throw new InvalidDataException($"Layer {layer.Layer}: the model has no SparseAttention node '{layer.Node}' (the runtime config does not match it).");
            }
            SetAttribute(node, OnnxBuilder.StringAttribute("method", target));
            var merged = new Dictionary<string, double>(target == layer.Method ? layer.Parameters : new Dictionary<string, double>());
            foreach (var (name, value) in parameters)
            {
                SetAttribute(node, SelectionParameters[name] ? OnnxBuilder.IntAttribute(name, checked((long)value)) : OnnxBuilder.FloatAttribute(name, (float)value));
                merged[name] = value;
            }
            layers.Add(layer with { Method = target, Parameters = merged });
        }
        return (model.ToByteArray(), layers);
    }

    private static void SetAttribute(NodeProto node, AttributeProto attribute)
    {
        var existing = node.Attribute.FirstOrDefault(a => a.Name == attribute.Name);
        if (existing is not null)
        {
            node.Attribute.Remove(existing);
        }
        node.Attribute.Add(attribute);
    }
}
