using OrtSparse.GraphRewriter;
using OrtSparse.Onnx;
using OrtSparse.Runtime;

namespace OrtSparse.Cli.Commands;

/// <summary><c>ortsparse patch IN -o OUT --method M</c>: replaces attention by SparseAttention.</summary>
internal static class PatchCommand
{
    private const string Usage = """
        usage: ortsparse patch IN.onnx -o OUT.onnx [--method dense] [--leave-unsupported] [--no-verify]

          -o, --output         where to write the patched model (never the input itself)
          --method             selection method (available: dense)
          --leave-unsupported  keep attention sites that cannot be replaced instead of failing
          --no-verify          skip loading the patched model in ONNX Runtime before writing it
        """;

    public static int Run(string[] args, TextWriter stdout)
    {
        var line = CommandLine.Parse(args, ["-o", "--output", "--method"], ["--leave-unsupported", "--no-verify", "--help", "-h"]);
        if (line.Flag("--help") || line.Flag("-h"))
        {
            stdout.WriteLine(Usage);
            return CliApp.Ok;
        }
        if (line.Positional.Count != 1)
        {
            throw new UsageException("patch takes exactly one input model");
        }
        var input = line.Positional[0];
        var output = line.Option("-o", "--output") ?? throw new UsageException("patch needs -o OUT.onnx");
        var options = new PatchOptions
        {
            Method = new MethodConfig { Method = line.Option("--method") ?? "dense" },
            LeaveUnsupported = line.Flag("--leave-unsupported"),
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
