using Onnx;

namespace OrtSparse.GraphRewriter;

/// <summary>Finds the attention sites of a model's main graph, in every form the rewriter knows.</summary>
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
        for (var i = 0; i < model.Graph.Node.Count; i++)
        {
            if (OnnxAttentionForm.Matches(model.Graph.Node[i]))
            {
                sites.Add(OnnxAttentionForm.Recognize(model, i, types));
            }
        }
        return sites;
    }
}
