using Onnx;

namespace OrtSparse.GraphRewriter;

/// <summary>Hands out value and node names that no existing name in the graph uses.</summary>
internal sealed class NameAllocator
{
    private readonly HashSet<string> _taken = new(StringComparer.Ordinal);

    public NameAllocator(GraphProto graph)
    {
        foreach (var node in graph.Node)
        {
            _taken.Add(node.Name);
            _taken.UnionWith(node.Input);
            _taken.UnionWith(node.Output);
        }
        _taken.UnionWith(graph.Input.Select(i => i.Name));
        _taken.UnionWith(graph.Output.Select(o => o.Name));
        _taken.UnionWith(graph.Initializer.Select(i => i.Name));
        _taken.UnionWith(graph.ValueInfo.Select(v => v.Name));
    }

    /// <summary>Returns <paramref name="wanted"/>, or it with the smallest numeric suffix that is free.</summary>
    public string Fresh(string wanted)
    {
        var name = wanted;
        for (var suffix = 1; !_taken.Add(name); suffix++)
        {
            name = $"{wanted}_{suffix}";
        }
        return name;
    }
}
