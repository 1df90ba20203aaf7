using System.Text.Json;
using Onnx;

namespace OrtSparse.GraphRewriter;

/// <summary>The error for a model the rewriter cannot patch; the message names the site and the reason.</summary>
public sealed class PatchException(string message) : Exception(message);

/// <summary>Replaces attention sites by com.ortsparse.SparseAttention and leaves everything else untouched.</summary>
public static class ModelPatcher
{
    /// <summary>Metadata key under which the patch records what it did (compact JSON: the version, and per layer the form, method and parameters).</summary>
    public const string MetadataKey = "ortsparse.patch";

    /// <summary>Metadata key holding <see cref="ToolVersion"/>.</summary>
    public const string VersionMetadataKey = "ortsparse.version";

    /// <summary>The version of this rewriter, recorded in the models it patches and in their runtime configs.</summary>
    public static string ToolVersion { get; } = typeof(ModelPatcher).Assembly.GetName().Version!.ToString(3);

    /// <summary>
    /// The layers <see cref="Patch"/> would replace, each with its method: the replaceable sites of
    /// <paramref name="sites"/> in graph order.
    /// </summary>
    /// <param name="sites">The model's sites (<see cref="AttentionSiteFinder.Find"/>).</param>
    /// <param name="options">The methods; null means dense.</param>
    /// <exception cref="ArgumentException">The options are invalid (<see cref="PatchOptions.Validate"/>).</exception>
    /// <exception cref="PatchException">A layer range names a layer the model does not have.</exception>
    public static IReadOnlyList<LayerPlan> Plan(IReadOnlyList<AttentionSite> sites, PatchOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(sites);
        options ??= new PatchOptions();
        options.Validate();
        var replaceable = sites.Where(s => s.CanReplace).OrderBy(s => s.NodeIndex).ToList();
        foreach (var entry in options.LayerMethods)
        {
            var named = entry.Layers.Last ?? entry.Layers.First;
            if (named >= replaceable.Count)
            {
                throw new PatchException($"layers {entry.Layers} ({entry.Method.Method}): the model has no layer {named}; " +
                    (replaceable.Count == 0 ? "none of its attention sites can be replaced" : $"the attention sites that can be replaced are layers 0 to {replaceable.Count - 1}"));
            }
        }
        return replaceable.Select((site, layer) => new LayerPlan(layer, site, options.MethodFor(layer))).ToList();
    }

    /// <summary>Patches a copy of <paramref name="model"/>.</summary>
    /// <param name="model">The model to patch; it is not modified.</param>
    /// <param name="options">Methods and failure policy; null means dense, fail on unsupported sites.</param>
    public static PatchResult Patch(ModelProto model, PatchOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        options ??= new PatchOptions();
        options.Validate();

        var sites = AttentionSiteFinder.Find(model);
        var unsupported = sites.Where(s => !s.CanReplace).ToList();
        if (unsupported.Count > 0 && !options.LeaveUnsupported)
        {
            throw new PatchException(
                "Cannot replace " + string.Join("; ", unsupported.Select(s => $"{s.Kind} node '{s.NodeName}': {s.UnsupportedReason}")) +
                ". Pass --leave-unsupported to keep such sites as they are.");
        }
        if (unsupported.Count == sites.Count)
        {
            throw new PatchException(sites.Count == 0 ? "The model has no attention site that the rewriter recognises." : "No attention site can be replaced.");
        }
        var plan = Plan(sites, options);
        if (options.AddCache && unsupported.Count > 0)
        {
            throw new PatchException("Cannot add a KV cache while attention sites are left as they are: every layer needs the cache.");
        }

        var patched = model.Clone();
        var graph = patched.Graph;
        var types = new GraphTypes(graph);
        var names = new NameAllocator(graph);
        var index = new GraphIndex(graph);
        // Every rewrite reads the graph as it was; the node list is rebuilt once at the end. Sites are
        // wired from the last layer to the first.
        var rewrites = new Dictionary<int, SiteRewrite>();
        var layers = new List<PatchedLayer>();
        var cacheLengths = options.AddCache ? KvCacheAddition.Lengths.Allocate(names) : null;
        foreach (var planned in plan.Reverse())
        {
            var layer = planned;
            var site = layer.Site;
            var form = AttentionForms.Of(graph.Node[site.NodeIndex], index)!;
            var rewrite = form.Rewrite(patched, site, types, layer.Method, names, options.MaxLength);
            if (options.AddCache)
            {
                if (KvCacheAddition.Problem(site, rewrite.Attention) is { } problem)
                {
                    throw new PatchException($"Cannot add a KV cache to {site.Kind} node '{site.NodeName}': {problem}.");
                }
                site = KvCacheAddition.Wire(site, rewrite.Attention, layer.Layer, cacheLengths!, names);
                layer = layer with { Site = site };
            }
            var needs = MethodRequirements.For(layer.Method, site, layer.Layer, options.Calibration);
            var state = MethodWiring.Apply(graph, rewrite.Attention, site, layer.Method, needs.Calibration, needs.StateWidth, names);
            rewrites[site.NodeIndex] = rewrite;
            layers.Insert(0, new PatchedLayer(layer, state, RotaryOf(rewrite.Attention, graph, types),
                rewrite.Attention.OptionalInput(SparseAttentionOp.InputIndex("seqlens_k")) is not null) { CacheAdded = options.AddCache });
        }
        var cone = rewrites.Keys.SelectMany(i => index.UpstreamCone(graph.Node[i].Output[0])).Select(i => graph.Node[i]).ToList();
        ReplaceNodes(graph, rewrites);
        PruneDeadNodes(graph, cone);
        if (options.AddCache)
        {
            KvCacheAddition.Declare(graph, layers.Select(l => l.Plan.Site).ToList(), cacheLengths!);
            KvCacheAddition.ShiftPositions(patched, cacheLengths!, names);
        }
        if (Opsets.OnnxVersion(patched) is null && graph.Node.Any(n => Opsets.IsOnnxDomain(n.Domain)))
        {
            Opsets.Import(patched, "", Opsets.GlueVersion); // glue nodes in a contrib-only graph
        }
        Opsets.Import(patched, SparseAttentionOp.Domain, SparseAttentionOp.DomainVersion);
        var left = options.LeaveUnsupported ? unsupported : [];
        RecordMetadata(patched, layers, left);

        var problems = GraphValidator.Validate(patched);
        if (problems.Count > 0)
        {
            throw new PatchException("The patched graph is malformed (a rewriter bug): " + string.Join("; ", problems));
        }
        return new PatchResult(patched, layers, left);
    }

    /// <summary>The rotary embedding <paramref name="attention"/> applies, with the rows of its table when the original graph declares them.</summary>
    private static RotaryInOp? RotaryOf(NodeProto attention, GraphProto graph, GraphTypes types)
    {
        if (attention.IntAttribute("do_rotary") != 1)
        {
            return null;
        }
        var cosCache = attention.OptionalInput(SparseAttentionOp.InputIndex("cos_cache"));
        // A table the rewrite derived is an initializer the declared types predate.
        var dims = cosCache is null ? null : types.Find(cosCache)?.Dims ?? graph.Initializer.FirstOrDefault(i => i.Name == cosCache)?.Dims.Select(d => (long?)d).ToList();
        long? positions = dims is [{ } rows, _] ? rows : null;
        return new RotaryInOp(attention.IntAttribute("rotary_interleaved") == 1, positions);
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

    /// <summary>
    /// Removes the <paramref name="candidates"/> (nodes the replaced sites depended on) whose outputs nothing
    /// reads any more, e.g. the scores, mask and rotary nodes of an unfused attention, then the initializers
    /// only they read, and their value_info.
    /// </summary>
    private static void PruneDeadNodes(GraphProto graph, IReadOnlyCollection<NodeProto> candidates)
    {
        var pending = new HashSet<NodeProto>(candidates, ReferenceEqualityComparer.Instance);
        var removed = new List<NodeProto>();
        for (var changed = true; changed;)
        {
            var read = ReadValues(graph);
            var dead = graph.Node.Where(n => pending.Contains(n) && n.Output.All(o => o.Length == 0 || !read.Contains(o))).ToList();
            foreach (var node in dead)
            {
                graph.Node.Remove(node);
                pending.Remove(node);
            }
            removed.AddRange(dead);
            changed = dead.Count > 0;
        }
        var stillRead = ReadValues(graph);
        var orphans = removed.SelectMany(n => n.Input).Where(i => !stillRead.Contains(i)).ToHashSet();
        foreach (var initializer in graph.Initializer.Where(i => orphans.Contains(i.Name) && graph.Input.All(input => input.Name != i.Name)).ToList())
        {
            graph.Initializer.Remove(initializer);
        }
        var gone = removed.SelectMany(n => n.Output).ToHashSet();
        foreach (var stale in graph.ValueInfo.Where(v => gone.Contains(v.Name)).ToList())
        {
            graph.ValueInfo.Remove(stale);
        }
    }

    /// <summary>Every value a node (or a node of a subgraph) reads, and the graph outputs.</summary>
    private static HashSet<string> ReadValues(GraphProto graph)
    {
        var read = graph.Output.Select(o => o.Name).ToHashSet();
        void Visit(IEnumerable<NodeProto> nodes)
        {
            foreach (var node in nodes)
            {
                read.UnionWith(node.Input);
                foreach (var attribute in node.Attribute)
                {
                    if (attribute.G is not null)
                    {
                        Visit(attribute.G.Node);
                    }
                    foreach (var subgraph in attribute.Graphs)
                    {
                        Visit(subgraph.Node);
                    }
                }
            }
        }
        Visit(graph.Node);
        return read;
    }

    private static void RecordMetadata(ModelProto model, IReadOnlyList<PatchedLayer> layers, IReadOnlyList<AttentionSite> left)
    {
        var record = new
        {
            version = ToolVersion,
            layers = layers.Select(l => new
            {
                layer = l.Plan.Layer,
                node = l.Plan.Site.NodeName,
                form = l.Plan.Site.Kind,
                method = l.Plan.Method.Method,
                parameters = RuntimeConfig.ParametersOf(l.Plan.Method),
            }),
            left = left.Select(s => new { node = s.NodeName, form = s.Kind, reason = s.UnsupportedReason }),
        };
        SetMetadata(model, VersionMetadataKey, ToolVersion);
        SetMetadata(model, MetadataKey, JsonSerializer.Serialize(record, RuntimeConfig.JsonOptions(indented: false)));
    }

    private static void SetMetadata(ModelProto model, string key, string value)
    {
        var existing = model.MetadataProps.FirstOrDefault(p => p.Key == key);
        if (existing is null)
        {
            model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
        }
        else
        {
            existing.Value = value;
        }
    }
}
