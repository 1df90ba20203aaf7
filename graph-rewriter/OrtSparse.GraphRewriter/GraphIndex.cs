using Onnx;

namespace OrtSparse.GraphRewriter;

/// <summary>Who produces and who reads each value of a main graph, built once per pass over it.</summary>
internal sealed class GraphIndex
{
    private readonly Dictionary<string, int> _producers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<int>> _readers = new(StringComparer.Ordinal);
    private readonly HashSet<string> _graphOutputs;

    public GraphIndex(GraphProto graph)
    {
        Graph = graph;
        for (var i = 0; i < graph.Node.Count; i++)
        {
            foreach (var output in graph.Node[i].Output.Where(o => o.Length > 0))
            {
                _producers[output] = i;
            }
            foreach (var input in graph.Node[i].Input.Where(o => o.Length > 0).Distinct())
            {
                if (!_readers.TryGetValue(input, out var readers))
                {
                    _readers[input] = readers = [];
                }
                readers.Add(i);
            }
        }
        _graphOutputs = graph.Output.Select(o => o.Name).ToHashSet();
    }

    /// <summary>The graph.</summary>
    public GraphProto Graph { get; }

    /// <summary>The index of the node producing <paramref name="value"/>, or null (graph input, initializer, unknown).</summary>
    public int? ProducerIndex(string value) => _producers.TryGetValue(value, out var index) ? index : null;

    /// <summary>The node producing <paramref name="value"/> when its op type is <paramref name="opType"/> (ONNX domain), or null.</summary>
    public NodeProto? Producer(string value, string opType) =>
        ProducerIndex(value) is { } i && Graph.Node[i] is var node && node.OpType == opType && Opsets.IsOnnxDomain(node.Domain) ? node : null;

    /// <summary>The node producing <paramref name="value"/>, or null.</summary>
    public NodeProto? Producer(string value) => ProducerIndex(value) is { } i ? Graph.Node[i] : null;

    /// <summary>Indices of the main-graph nodes reading <paramref name="value"/>.</summary>
    public IReadOnlyList<int> Readers(string value) => _readers.TryGetValue(value, out var readers) ? readers : [];

    /// <summary>True when <paramref name="value"/> is a graph output.</summary>
    public bool IsGraphOutput(string value) => _graphOutputs.Contains(value);

    /// <summary>The nodes <paramref name="value"/> depends on, transitively (node indices).</summary>
    public HashSet<int> UpstreamCone(string value)
    {
        var cone = new HashSet<int>();
        var pending = new Stack<string>([value]);
        while (pending.Count > 0)
        {
            if (ProducerIndex(pending.Pop()) is { } i && cone.Add(i))
            {
                foreach (var input in Graph.Node[i].Input.Where(n => n.Length > 0))
                {
                    pending.Push(input);
                }
            }
        }
        return cone;
    }
}
