using System.Globalization;
using OrtSparse.GraphRewriter;

namespace OrtSparse.Cli.Commands;

/// <summary>
/// <c>ortsparse inspect MODEL [--method M] [--dense-layers L] [--layer-method SPEC] [--param value …]</c>:
/// lists the attention sites, what <c>patch</c> would do with each, and the method of each layer.
/// </summary>
internal static class InspectCommand
{
    public static int Run(string[] args, TextWriter stdout)
    {
        var line = CommandLine.Parse(args, MethodOptions.Names, ["--help", "-h"]);
        if (line.Flag("--help") || line.Flag("-h"))
        {
            stdout.WriteLine($"""
                usage: ortsparse inspect MODEL [--method dense] [--dense-layers L] [--layer-method SPEC] [--PARAMETER value ...]

                Lists each attention site (kind, heads, head dim, element type, cache inputs), what patch would do with it
                and what it would fuse or insert around it; then the plan: each layer's method, parameters and state
                tensors under the options given (the options of 'ortsparse patch').

                {MethodOptions.Help()}
                """);
            return CliApp.Ok;
        }
        if (line.Positional.Count != 1)
        {
            throw new UsageException("inspect takes exactly one MODEL");
        }
        var (defaultMethod, layerMethods) = MethodOptions.Parse(line);
        var path = line.Positional[0];
        var model = ModelFiles.Load(path).Proto;
        var sites = AttentionSiteFinder.Find(model);
        var opset = model.OpsetImport.FirstOrDefault(o => o.Domain is "" or "ai.onnx")?.Version;
        stdout.WriteLine($"model: {path}");
        stdout.WriteLine($"  ir_version {model.IrVersion}, opset {opset?.ToString() ?? "none"}, producer {model.ProducerName} {model.ProducerVersion}".TrimEnd());
        stdout.WriteLine($"  {model.Graph.Node.Count} nodes, {model.Graph.Input.Count} inputs, {model.Graph.Output.Count} outputs");
        var patched = model.Graph.Node.Where(n => n.Domain == SparseAttentionOp.Domain && n.OpType == SparseAttentionOp.OpType).ToList();
        if (patched.Count > 0)
        {
            stdout.WriteLine($"already patched: {patched.Count} com.ortsparse.SparseAttention node(s)");
            foreach (var node in patched)
            {
                var method = node.Attribute.FirstOrDefault(a => a.Name == "method")?.S.ToStringUtf8() ?? "dense";
                var state = node.Input.Skip(SparseAttentionOp.InputIndex("past_index")).Take(2).FirstOrDefault(i => i.Length > 0);
                stdout.WriteLine($"  {node.Name}: method {method}{(state is null ? "" : $", state input {state}")}");
            }
        }
        stdout.WriteLine($"attention sites: {sites.Count}");
        if (sites.Count == 0)
        {
            return CliApp.Ok;
        }
        var rows = sites.Select(s => new[]
        {
            s.NodeIndex.ToString(), s.NodeName, s.Kind, s.Rank == 0 ? "?" : $"{s.Rank}-D",
            s.NumHeads?.ToString() ?? "?", s.KvNumHeads?.ToString() ?? "?", s.HeadDim?.ToString() ?? "?", s.ElementType,
            s.PastKey is null ? "-" : $"{s.PastKey}, {s.PastValue}",
            s.CanReplace ? "replace with com.ortsparse.SparseAttention" : $"cannot replace: {s.UnsupportedReason}",
        }).ToList();
        Table.Write(stdout, ["node#", "name", "kind", "layout", "heads", "kv heads", "head dim", "type", "cache inputs", "patch"], rows);
        foreach (var site in sites.Where(s => s.Notes.Count > 0))
        {
            stdout.WriteLine($"{site.NodeName}:");
            foreach (var note in site.Notes)
            {
                stdout.WriteLine($"  {note}");
            }
        }
        var plan = ModelPatcher.Plan(sites, new PatchOptions { Method = defaultMethod, LayerMethods = layerMethods });
        if (plan.Count > 0)
        {
            stdout.WriteLine("plan (layer L is the L-th site that can be replaced, in graph order):");
            Table.Write(stdout, ["layer", "node", "method", "parameters", "state input -> output"], plan.Select(l => new[]
            {
                l.Layer.ToString(CultureInfo.InvariantCulture), l.Site.NodeName, l.Method.Method,
                l.Method.Parameters.Count == 0 ? "-" : string.Join(", ", l.Method.Parameters.OrderBy(p => p.Key, StringComparer.Ordinal)
                    .Select(p => FormattableString.Invariant($"{p.Key}={p.Value}"))),
                l.StateInput is null ? "-" : $"{l.StateInput} -> {l.StateOutput ?? "(none: the site has no present cache)"}",
            }).ToList());
        }
        return CliApp.Ok;
    }
}
