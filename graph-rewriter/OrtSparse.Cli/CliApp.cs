using OrtSparse.Cli.Commands;

namespace OrtSparse.Cli;

/// <summary>The ortsparse command line: dispatches to one command and turns errors into messages and exit codes.</summary>
public static class CliApp
{
    /// <summary>Exit code for success.</summary>
    public const int Ok = 0;

    /// <summary>Exit code for a failed check or operation.</summary>
    public const int Failed = 1;

    /// <summary>Exit code for a usage error.</summary>
    public const int Usage = 2;

    private const string Help = """
        ortsparse — dynamic sparse attention for ONNX Runtime

        usage: ortsparse COMMAND [ARGS]

          inspect MODEL [--method M] [--dense-layers L] [--layer-method SPEC] [--PARAMETER value ...]
                                             list the attention sites, what patch would do with each, and each layer's method
          patch IN.onnx -o OUT.onnx [--method M] [--dense-layers L] [--layer-method SPEC] [--PARAMETER value ...]
                [--calibration CALIB] [--leave-unsupported] [--no-verify]
                                             replace attention by com.ortsparse.SparseAttention; write the
                                             runtime config OUT.ortsparse.json beside OUT.onnx
          calibrate MODEL --tokens FILE... -o CALIB [--methods loki,saap,hash] [--seed S]
                                             compute the calibration loki, saap and hash need
          capture MODEL --tokens FILE -o CACHE [--layers 0,1]
                                             save the queries, keys and values of a real sequence
          check MODEL DATASET_DIR... [--atol A] [--rtol R] [--device cpu|cuda] [--threads N]
                                             run MODEL on ONNX test data sets and compare outputs
                                             (a model with a KV cache: logits of the last K tokens, each fed as a decode step)
          bench attention [--device cpu|cuda] [--context T] [--batch B] [--heads H] [--kv-heads K] [--head-dim D]
                          [--cache CACHE --layer N] [--methods M,...] [--budget F] [--dtype fp32|fp16|bf16]
                          [--steps N] [--warmup N] [--threads N] [--json] [--csv FILE] [--compare-onnxruntime]
                                             time a decode step of every method against dense
          bench generate [--device cpu|cuda] [--contexts 1024,4096,...] [--methods quest,...] [--no-genai] [--csv FILE]
                                             end-to-end generation: ONNX Runtime GenAI, ONNX Runtime's GQA, dense, each method
          bench fidelity MODEL_DIR --text PATH... [--context T] [--methods M,...] [--budgets 1/16,...] [--out DIR]
                                             perplexity, top-1 agreement, needle-in-code and recall of each method and budget
          generate MODEL_DIR --prompt TEXT [--device cpu|cuda] [--max-new N] [--temperature T] [--top-k K] [--top-p P] ...
                                             stream generated text, then time to first token, tokens/s, KV cache read
          chat MODEL_DIR [--system TEXT] [generate's options]
                                             talk with the model interactively
          demo [MODEL.onnx] [--prompt TEXT] [--method M] [--PARAMETER value ...] [--device cpu|cuda]
                                             dense and a sparse method side by side: text, speed, cache read, agreement
          plot DATA.csv -o OUT.png --x COLUMN --y COLUMN [--series COLUMN] [--where COLUMN=VALUE ...]
               [--log-x] [--log-y] [--baseline SERIES ...] [--title TEXT] [--x-label TEXT] [--y-label TEXT]
                                             draw a PNG line plot of CSV columns (latency vs context, ...)

        Run 'ortsparse COMMAND --help' for a command's details.
        """;

    /// <summary>Runs the command named by <paramref name="args"/>[0].</summary>
    /// <param name="args">The command line.</param>
    /// <param name="stdout">Where results go.</param>
    /// <param name="stderr">Where errors go.</param>
    /// <returns>The process exit code.</returns>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            stdout.WriteLine(Help);
            return args.Length == 0 ? Usage : Ok;
        }
        var rest = args.Skip(1).ToArray();
        try
        {
            return args[0] switch
            {
                "inspect" => InspectCommand.Run(rest, stdout),
                "patch" => PatchCommand.Run(rest, stdout),
                "check" => CheckCommand.Run(rest, stdout),
                "bench" => BenchCommand.Run(rest, stdout, stderr),
                "calibrate" => CalibrateCommand.Run(rest, stdout, stderr),
                "capture" => CaptureCommand.Run(rest, stdout, stderr),
                "plot" => PlotCommand.Run(rest, stdout),
                "generate" => GenerateCommand.Run(rest, stdout, stderr),
                "chat" => ChatCommand.Run(rest, Console.In, stdout, stderr),
                "demo" => DemoCommand.Run(rest, stdout, stderr),
                _ => throw new UsageException($"unknown command '{args[0]}' (commands: inspect, patch, check, calibrate, capture, bench, plot, generate, chat, demo)"),
            };
        }
        catch (UsageException e)
        {
            stderr.WriteLine($"ortsparse {args[0]}: {e.Message}");
            stderr.WriteLine("Run 'ortsparse --help' for usage.");
            return Usage;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or NotSupportedException
                                      or ArgumentException or InvalidOperationException or Microsoft.ML.OnnxRuntime.OnnxRuntimeException
                                      or GraphRewriter.PatchException)
        {
            stderr.WriteLine($"ortsparse {args[0]}: {e.Message}");
            return Failed;
        }
    }
}
