using OrtSparse.Runtime.Generation;

namespace OrtSparse.Cli.Commands;

/// <summary><c>ortsparse generate MODEL_DIR --prompt TEXT …</c>: streams generated text, then the numbers.</summary>
internal static class GenerateCommand
{
    private static readonly string Usage = $"""
        usage: ortsparse generate MODEL_DIR (--prompt TEXT | --prompt-file FILE) [options]

        Generates from a patched model folder (model, runtime config and tokenizer.json, as
        `ortsparse patch IN.onnx -o DIR/model.onnx --add-cache` writes it), printing the text as it
        is produced and then: time to first token, prefill and decode tokens/s, and the share of the
        KV cache a decode step reads.

        {GenerationOptions.Help}
        """;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var line = CommandLine.Parse(args, ["--prompt", "--prompt-file", .. GenerationOptions.Names], ["--help", "-h"]);
        if (line.Flag("--help") || line.Flag("-h"))
        {
            stdout.WriteLine(Usage);
            return CliApp.Ok;
        }
        if (line.Positional.Count != 1)
        {
            throw new UsageException("generate needs one MODEL_DIR");
        }
        var prompt = line.Option("--prompt") ?? (line.Option("--prompt-file") is { } file ? File.ReadAllText(file)
            : throw new UsageException("generate needs --prompt TEXT or --prompt-file FILE"));
        var settings = GenerationOptions.SettingsFrom(line);
        using var model = Model.Load(line.Positional[0], GenerationOptions.ModelOptionsFrom(line));
        var ids = model.EncodePrompt(prompt);
        using var generator = model.CreateGenerator(settings);
        var progress = ids.Length > 4 * model.Options.PrefillChunkTokens ? new ProgressBar(stderr, "prefill", ids.Length) : null;
        generator.PrefillProgress = progress is null ? null : (done, _) => progress.Report(done);
        generator.AppendTokens(ids);
        while (!generator.IsDone)
        {
            generator.GenerateNextToken();
            stdout.Write(generator.TakeText(0));
            stdout.Flush();
        }
        stdout.WriteLine();
        stdout.WriteLine($"-- {generator.GetFinishReason(0).ToString().ToLowerInvariant()}; {GenerationOptions.Summary(generator.Stats, model.Config)}");
        return CliApp.Ok;
    }
}
