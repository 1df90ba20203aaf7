using Onnx;

namespace OrtSparse.GraphRewriter;

/// <summary>Structural checks of a main graph: every value defined once, before it is used.</summary>
public static class GraphValidator
{
    /// <summary>Returns the problems found; empty when the graph is well formed.</summary>
    /// <param name="model">The model to check.</param>
    public static IReadOnlyList<string> Validate(ModelProto model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var problems = new List<string>();
        var graph = model.Graph;
        var defined = new HashSet<string>(graph.Input.Select(i => i.Name).Concat(graph.Initializer.Select(i => i.Name)), StringComparer.Ordinal);
        var domains = model.OpsetImport.Select(o => o.Domain is "ai.onnx" ? "" : o.Domain).ToHashSet();
        for (var i = 0; i < graph.Node.Count; i++)
        {
            var node = graph.Node[i];
            var label = node.Name.Length > 0 ? node.Name : $"#{i} ({node.OpType})";
            // Nodes with subgraphs may read outer-scope values through them, not through their inputs.
            foreach (var input in node.Input.Where(n => n.Length > 0 && !defined.Contains(n)))
            {
                problems.Add($"node {label} reads '{input}', which no graph input, initializer or earlier node defines");
            }
            foreach (var output in node.Output.Where(n => n.Length > 0))
            {
                if (!defined.Add(output))
                {
                    problems.Add($"node {label} defines '{output}', which is already defined");
                }
            }
            if (!domains.Contains(node.Domain is "ai.onnx" ? "" : node.Domain))
            {
                problems.Add($"node {label} uses domain '{node.Domain}', which the model does not import");
            }
        }
        foreach (var output in graph.Output.Where(o => !defined.Contains(o.Name)))
        {
            problems.Add($"graph output '{output.Name}' is never defined");
        }
        return problems;
    }
}
