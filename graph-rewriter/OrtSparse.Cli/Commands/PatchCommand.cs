using System.Globalization;
using System.Text;
using OrtSparse.GraphRewriter;
using OrtSparse.Onnx;
using OrtSparse.Runtime;

namespace OrtSparse.Cli.Commands;

/// <summary><c>ortsparse patch IN -o OUT --method M [--param value …]</c>: replaces attention by SparseAttention.</summary>
internal static class PatchCommand
{
    private static readonly IReadOnlyList<MethodParameter> AllParameters =
        MethodCatalog.All.SelectMany(m => m.Parameters).DistinctBy(p => p.Name).ToList();

    private static string Usage()
    {
        var text = new StringBuilder("""
            usage: ortsparse patch IN.onnx -o OUT.onnx [--method dense] [--PARAMETER value ...]
                                   [--calibration CALIB] [--leave-unsupported] [--no-verify]

              -o, --output         where to write the patched model (never the input itself)
              --method             selection method (below)
              --calibration CALIB  output of 'ortsparse calibrate' (loki and saap need it; hash uses it if present)
              --leave-unsupported  keep attention sites that cannot be replaced instead of failing
              --no-verify          skip loading the patched model in ONNX Runtime before writing it

            methods and their parameters (docs/ops.md):

            """);
        foreach (var method in MethodCatalog.All)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"  {method.Name,-10} {method.Summary}");
            foreach (var parameter in method.Parameters)
            {
                var fallback = parameter.Default is { } d ? d.ToString(CultureInfo.InvariantCulture) : "model-dependent";
                text.AppendLine(CultureInfo.InvariantCulture, $"      --{parameter.Name,-12} {parameter.Help} (default {fallback})");
            }
        }
        return text.ToString();
    }

    public static int Run(string[] args, TextWriter stdout)
    {
        var parameterOptions = AllParameters.SelectMany(p => new[] { $"--{p.Name}", $"--{p.Name.Replace('_', '-')}" }).Distinct();
        var line = CommandLine.Parse(args, ["-o", "--output", "--method", "--calibration", .. parameterOptions], ["--leave-unsupported", "--no-verify", "--help", "-h"]);
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
        var parameters = new Dictionary<string, double>();
        foreach (var parameter in AllParameters)
        {
            var flag = $"--{parameter.Name}";
            if (line.Option(flag, $"--{parameter.Name.Replace('_', '-')}") is not null)
            {
                parameters[parameter.Name] = line.Double(line.Option(flag) is null ? $"--{parameter.Name.Replace('_', '-')}" : flag, double.NaN);
            }
        }
        var options = new PatchOptions
        {
            Method = new MethodConfig { Method = line.Option("--method") ?? "dense", Parameters = parameters },
            LeaveUnsupported = line.Flag("--leave-unsupported"),
            Calibration = line.Option("--calibration") is { } calibration ? OrtSparse.Calibration.CalibrationData.Load(calibration) : null,
        };
        try
        {
            options.Method.Validate();
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message);
        }
        ModelFiles.EnsureDistinct(input, output);

        var source = ModelFiles.Load(input);
        var result = ModelPatcher.Patch(source.Proto, options);
        ModelFiles.Save(new OnnxModel(result.Model, source.SourcePath), output, verify: line.Flag("--no-verify") ? null : VerifyLoads);

        stdout.WriteLine($"patched {result.Replaced.Count} attention site(s) with method '{options.Method.Method}' -> {output}");
        foreach (var site in result.Left)
        {
            stdout.WriteLine($"  left {site.Kind} node '{site.NodeName}' as it was: {site.UnsupportedReason}");
        }
        return CliApp.Ok;
    }

    /// <summary>Opens a CPU session on the patched model with our ops registered: the output must load in ONNX Runtime.</summary>
    private static void VerifyLoads(string path)
    {
        using var session = SessionFactory.Open(path, new SessionConfig { IntraOpThreads = 1 });
    }
}
