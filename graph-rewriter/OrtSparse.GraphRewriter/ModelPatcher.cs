using System.Text.Json;
using Onnx;

namespace OrtSparse.GraphRewriter;

/// <summary>What <see cref="ModelPatcher.Patch"/> should do.</summary>
public sealed record PatchOptions
{
    /// <summary>The method written onto every replaced site.</summary>
    public MethodConfig Method { get; init; } = new();

    /// <summary>Leave sites that cannot be replaced as they are instead of failing.</summary>
    public bool LeaveUnsupported { get; init; }

    /// <summary>Calibration data (from <c>ortsparse calibrate</c>) for methods that need it; layer L is the L-th replaced site in graph order.</summary>
    public OrtSparse.Calibration.CalibrationData? Calibration { get; init; }
}

/// <summary>The patched model and what was done to each site.</summary>
/// <param name="Model">A new model; the input model is unchanged.</param>
/// <param name="Replaced">Sites replaced by SparseAttention.</param>
/// <param name="Left">Sites left as they were (only with <see cref="PatchOptions.LeaveUnsupported"/>).</param>
public sealed record PatchResult(ModelProto Model, IReadOnlyList<AttentionSite> Replaced, IReadOnlyList<AttentionSite> Left);

/// <summary>The error for a model the rewriter cannot patch; the message names the site and the reason.</summary>
public sealed class PatchException(string message) : Exception(message);

/// <summary>Replaces attention sites by com.ortsparse.SparseAttention and leaves everything else untouched.</summary>
public static class ModelPatcher
{
    /// <summary>Metadata key under which the patch records what it did (JSON).</summary>
    public const string MetadataKey = "ortsparse.patch";

    /// <summary>Patches a copy of <paramref name="model"/>.</summary>
    /// <param name="model">The model to patch; it is not modified.</param>
    /// <param name="options">Method and failure policy; null means dense, fail on unsupported sites.</param>
    public static PatchResult Patch(ModelProto model, PatchOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        options ??= new PatchOptions();
        options.Method.Validate();

        var sites = AttentionSiteFinder.Find(model);
        var unsupported = sites.Where(s => !s.CanReplace).ToList();
        if (unsupported.Count > 0 && !options.LeaveUnsupported)
        {
            throw new PatchException(
                "Cannot replace " + string.Join("; ", unsupported.Select(s => $"{s.Kind} node '{s.NodeName}': {s.UnsupportedReason}")) +
                ". Pass --leave-unsupported to keep such sites as they are.");
        }
        var replaced = sites.Where(s => s.CanReplace).ToList();
        if (replaced.Count == 0)
        {
            throw new PatchException(sites.Count == 0 ? "The model has no attention site that the rewriter recognises." : "No attention site can be replaced.");
        }

        var patched = model.Clone();
        var graph = patched.Graph;
        var types = new GraphTypes(graph);
        var names = new NameAllocator(graph);
        // Every rewrite reads the graph as it was; the node list is rebuilt once at the end. Layer L is
        // the L-th site in graph order; sites are wired from the last layer to the first.
        var rewrites = new Dictionary<int, SiteRewrite>();
        var layers = replaced.OrderBy(s => s.NodeIndex).Select((site, layer) => (site, layer)).ToList();
        foreach (var (site, layer) in layers.OrderByDescending(l => l.site.NodeIndex))
        {
            var form = AttentionForms.Of(graph.Node[site.NodeIndex])!;
            var rewrite = form.Rewrite(patched, site, types, options.Method, names);
            var needs = MethodRequirements.For(options.Method, site, layer, options.Calibration);
            MethodWiring.Apply(graph, rewrite.Attention, site, options.Method, needs.Calibration, needs.StateWidth, names);
            rewrites[site.NodeIndex] = rewrite;
        }
        ReplaceNodes(graph, rewrites);
        if (Opsets.OnnxVersion(patched) is null && graph.Node.Any(n => Opsets.IsOnnxDomain(n.Domain)))
        {
            Opsets.Import(patched, "", Opsets.GlueVersion); // glue nodes in a contrib-only graph
        }
        Opsets.Import(patched, SparseAttentionOp.Domain, SparseAttentionOp.DomainVersion);
        RecordMetadata(patched, options, replaced, unsupported);

        var problems = GraphValidator.Validate(patched);
        if (problems.Count > 0)
        {
            throw new PatchException("The patched graph is malformed (a rewriter bug): " + string.Join("; ", problems));
        }
        return new PatchResult(patched, replaced, options.LeaveUnsupported ? unsupported : []);
    }

    /// <summary>Puts each rewrite's nodes in place of its anchor node, drops the nodes it absorbed and their stale value_info.</summary>
    private static void ReplaceNodes(GraphProto graph, IReadOnlyDictionary<int, SiteRewrite> rewrites)
    {
        var absorbed = rewrites.Values.SelectMany(r => r.Absorbed).ToHashSet();
        var nodes = new List<NodeProto>();
        for (var i = 0; i < graph.Node.Count; i++)
        {
            if (rewrites.TryGetValue(i, out var rewrite))
            {
                nodes.AddRange(rewrite.Nodes);
            }
            else if (!absorbed.Contains(i))
            {
                nodes.Add(graph.Node[i]);
            }
        }
        var removedValues = absorbed.SelectMany(i => graph.Node[i].Output).ToHashSet();
        graph.Node.Clear();
        graph.Node.Add(nodes);
        foreach (var stale in graph.ValueInfo.Where(v => removedValues.Contains(v.Name)).ToList())
        {
            graph.ValueInfo.Remove(stale);
        }
    }

    private static void RecordMetadata(ModelProto model, PatchOptions options, IReadOnlyList<AttentionSite> replaced, IReadOnlyList<AttentionSite> left)
    {
        var record = new
        {
            tool = "ortsparse",
            method = options.Method.Method,
            parameters = options.Method.Parameters,
            replaced = replaced.Select(s => new { node = s.NodeName, kind = s.Kind }),
            left = left.Select(s => new { node = s.NodeName, kind = s.Kind, reason = s.UnsupportedReason }),
        };
        var json = JsonSerializer.Serialize(record);
        var existing = model.MetadataProps.FirstOrDefault(p => p.Key == MetadataKey);
        if (existing is null)
        {
            model.MetadataProps.Add(new StringStringEntryProto { Key = MetadataKey, Value = json });
        }
        else
        {
            existing.Value = json;
        }
    }
}
