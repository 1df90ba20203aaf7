using OrtSparse.GraphRewriter;
using OrtSparse.Onnx;
using OrtSparse.Runtime;

namespace OrtSparse.Cli.Commands;

/// <summary>
/// <c>ortsparse patch IN -o OUT [--method M] [--dense-layers L] [--layer-method SPEC] [--param value …]</c>:
/// replaces attention by SparseAttention and writes the runtime config beside the output.
/// </summary>
internal static class PatchCommand
{
    private static string Usage() => $"""
        usage: ortsparse patch IN.onnx -o OUT.onnx [--method dense] [--dense-layers L] [--layer-method SPEC]
                               [--PARAMETER value ...] [--calibration CALIB] [--max-length 4096] [--leave-unsupported]
                               [--add-cache] [--no-verify]

          -o, --output         where to write the patched model (never the input itself); the runtime config
                               (docs/runtime-config.md) goes beside it: OUT.onnx -> OUT.ortsparse.json
          --calibration CALIB  output of 'ortsparse calibrate' (loki and saap need it; hash uses it if present)
          --max-length N       the longest sequence to serve where the rotary embedding's cos/sin tables are derived
                               from the graph (default 4096; the model's trained context or more)
          --leave-unsupported  keep attention sites that cannot be replaced instead of failing
          --add-cache          give a model exported without a KV cache one (past_key_values.N.key/value inputs,
                               present.N.key/value outputs, positions after the cached prefix; docs/rewriter.md)
          --no-verify          skip loading the patched model in ONNX Runtime before writing it
        {MethodOptions.Help()}
        """;

    public static int Run(string[] args, TextWriter stdout)
    {
        var line = CommandLine.Parse(args, ["-o", "--output", "--calibration", "--max-length", .. MethodOptions.Names], ["--leave-unsupported", "--add-cache", "--no-verify", "--help", "-h"]);
        if (line.Flag("--help") || line.Flag("-h"))
        {
            stdout.WriteLine(Usage());
            return CliApp.Ok;
        }
        if (line.Positional.Count != 1)
        {
            throw new UsageException("patch takes exactly one input model");
        }
        var input = line.Positional[0];
        var output = line.Option("-o", "--output") ?? throw new UsageException("patch needs -o OUT.onnx");
        var (method, layerMethods) = MethodOptions.Parse(line);
        var configPath = RuntimeConfig.PathBeside(output);
        ModelFiles.EnsureDistinct(input, output);
        ModelFiles.EnsureDistinct(input, configPath, $"the runtime config {configPath}");
        var options = new PatchOptions
        {
            Method = method,
            LayerMethods = layerMethods,
            LeaveUnsupported = line.Flag("--leave-unsupported"),
            AddCache = line.Flag("--add-cache"),
            MaxLength = line.Int("--max-length", PatchOptions.DefaultMaxLength, 1, int.MaxValue),
            Calibration = line.Option("--calibration") is { } calibration ? OrtSparse.Calibration.CalibrationData.Load(calibration) : null,
        };

        var source = ModelFiles.Load(input);
        var result = ModelPatcher.Patch(source.Proto, options);
        var tokenizerFiles = ModelFiles.SavePatched(source, result, output, verify: line.Flag("--no-verify") ? null : VerifyLoads);

        var methods = result.Layers.Select(l => l.Plan.Method.Method).Distinct().ToList();
        stdout.WriteLine(methods.Count == 1
            ? $"patched {result.Layers.Count} attention site(s) with method '{methods[0]}' -> {output}"
            : $"patched {result.Layers.Count} attention site(s), layers {LayerGroups(result.Layers)} -> {output}");
        stdout.WriteLine($"runtime config -> {configPath}");
        if (tokenizerFiles.Count > 0)
        {
            stdout.WriteLine($"tokenizer -> {string.Join(", ", tokenizerFiles.Select(Path.GetFileName))} copied beside it");
        }
        foreach (var site in result.Left)
        {
            stdout.WriteLine($"  left {site.Kind} node '{site.NodeName}' as it was: {site.UnsupportedReason}");
        }
        return CliApp.Ok;
    }

    /// <summary>Consecutive layers of one method together: "0-1 dense, 2-5 quest".</summary>
    private static string LayerGroups(IReadOnlyList<PatchedLayer> layers)
    {
        var groups = new List<(int First, int Last, string Method)>();
        foreach (var layer in layers)
        {
            if (groups.Count > 0 && groups[^1].Method == layer.Plan.Method.Method && groups[^1].Last == layer.Plan.Layer - 1)
            {
                groups[^1] = groups[^1] with { Last = layer.Plan.Layer };
            }
            else
            {
                groups.Add((layer.Plan.Layer, layer.Plan.Layer, layer.Plan.Method.Method));
            }
        }
        return string.Join(", ", groups.Select(g => $"{new LayerRange(g.First, g.Last)} {g.Method}"));
    }

    /// <summary>Opens a CPU session on the patched model with our ops registered: the output must load in ONNX Runtime.</summary>
    private static void VerifyLoads(string path)
    {
        using var session = SessionFactory.Open(path, new SessionConfig { IntraOpThreads = 1 });
    }
}
