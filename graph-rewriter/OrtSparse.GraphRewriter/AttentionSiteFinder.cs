using Onnx;

namespace OrtSparse.GraphRewriter;

/// <summary>
/// Finds the attention sites of a model's main graph, in every form the rewriter knows: ONNX
/// Attention (opset 23/24, with the ONNX RotaryEmbedding nodes feeding it),
/// com.microsoft.GroupQueryAttention and com.microsoft.MultiHeadAttention (with the
/// com.microsoft.RotaryEmbedding nodes feeding it).
/// </summary>
public static class AttentionSiteFinder
{
    /// <summary>Lists every attention site, replaceable or not, in graph order.</summary>
    /// <param name="model">The model to search; it is not modified.</param>
    public static IReadOnlyList<AttentionSite> Find(ModelProto model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.Graph is null)
        {
            throw new ArgumentException("The model has no graph.", nameof(model));
        }
        var types = new GraphTypes(model.Graph);
        var sites = new List<AttentionSite>();
        var index = new GraphIndex(model.Graph);
        for (var i = 0; i < model.Graph.Node.Count; i++)
        {
            if (AttentionForms.Of(model.Graph.Node[i], index) is { } form)
            {
                sites.Add(form.Recognize(model, i, types));
            }
        }
        return sites;
    }
}
