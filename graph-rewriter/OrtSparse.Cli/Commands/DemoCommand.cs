using System.Globalization;
using System.Text.Json;
using OrtSparse.Calibration;
using OrtSparse.GraphRewriter;
using OrtSparse.Onnx;
using OrtSparse.Runtime.Generation;
using OrtSparse.Runtime.Sampling;

namespace OrtSparse.Cli.Commands;

/// <summary>
/// <c>ortsparse demo</c>: patches a model with dense and with a sparse method (a KV cache added), generates
/// from one prompt with both and shows them side by side: text, speed, share of the cache read, agreement.
/// </summary>
internal static class DemoCommand
{
    /// <summary>The shipped model's best method at its trained context (docs/fidelity.md).</summary>
    private const string DefaultMethod = "loki";

    /// <summary>
    /// The default prompt: this repository's training script up to the line that opens its main function, which the model
    /// writes. It ends before the newline: byte-level BPE merges a newline with the indentation after it, so a prompt that
    /// ends in a bare newline ends in a token the model rarely saw there.
    /// </summary>
    private const string DefaultPromptFile = "models/train_code_model.py", DefaultPromptEnd = "def main():";

    private static readonly string Usage = $"""
        usage: ortsparse demo [MODEL.onnx] [--prompt TEXT | --prompt-file FILE] [--method {DefaultMethod}] [--PARAMETER value ...]
                              [--max-new 64] [--repetition-penalty 1.3] [--device cpu|cuda] [--threads N] [--work DIR]

        Patches MODEL (an input_ids -> logits export with tokenizer.json beside it; default: the
        repository's models/code-model, a small Llama trained on Python code) twice with a KV cache
        added: dense, and --method (default {DefaultMethod}, the best for the shipped model) with the given
        parameters; calibration.onnx beside MODEL is used when present, and the model serves the
        tokenizer's model_max_length (tokenizer_config.json) when it is given. Then it generates
        greedily (with a repetition penalty, default 1.3: a model this small loops without one)
        from the prompt with both and prints the two texts, then time to first token,
        decode tokens/s, the share of the KV cache a decode step reads, and how many tokens agree.
        The default prompt is {DefaultPromptFile} (about 5,500 tokens) up to its main function.
        The patched models go to --work (default out/demo), reused when they are there.
        """;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var line = CommandLine.Parse(args,
            ["--prompt", "--prompt-file", "--max-new", "--repetition-penalty", "--device", "--threads", "--work", .. MethodOptions.Names.Where(n => n is not ("--dense-layers" or "--layer-method"))],
            ["--help", "-h"]);
        if (line.Flag("--help") || line.Flag("-h"))
        {
            stdout.WriteLine(Usage);
            return CliApp.Ok;
        }
        if (line.Positional.Count > 1)
        {
            throw new UsageException("demo takes at most one MODEL.onnx");
        }
        var method = new MethodConfig { Method = line.Option("--method") ?? DefaultMethod, Parameters = MethodOptions.SharedParameters(line) };
        _ = MethodCatalog.Get(method.Method); // an unknown method fails here, before any patching
        if (method.Method == "dense")
        {
            throw new UsageException("demo compares dense with a sparse --method; dense would be compared with itself");
        }
        var source = line.Positional.Count == 1 ? line.Positional[0] : RepositoryFile("models/code-model/model.onnx");
        var prompt = line.Option("--prompt") ?? (line.Option("--prompt-file") is { } file ? File.ReadAllText(file) : DefaultPrompt(source));
        var work = line.Option("--work") ?? Path.Combine("out", "demo");
        var dense = Patch(source, new MethodConfig { Method = "dense" }, Path.Combine(work, "dense"), stderr);
        var sparse = Patch(source, method, Path.Combine(work, Label(method)), stderr);

        var options = new ModelOptions { Device = DeviceOption.Parse(line.Option("--device")), IntraOpThreads = line.Int("--threads", 0, min: 0) };
        var penalty = line.Double("--repetition-penalty", 1.3);
        if (!(double.IsFinite(penalty) && penalty > 0))
        {
            throw new UsageException($"--repetition-penalty ({penalty}) must be a positive number");
        }
        var settings = new GeneratorSettings
        {
            MaxNewTokens = line.Int("--max-new", 64, min: 1),
            Sampling = SamplingOptions.Greedy with { RepetitionPenalty = penalty },
        };
        var denseRun = Generate(dense, options, prompt, settings);
        var sparseRun = Generate(sparse, options, prompt, settings);

        stdout.WriteLine($"demo: {source} on {DeviceOption.Name(options.Device)}, prompt {denseRun.Stats.PromptTokens} tokens, greedy, repetition penalty {penalty.ToString(CultureInfo.InvariantCulture)}");
        stdout.WriteLine($"== dense");
        stdout.WriteLine(denseRun.Text);
        stdout.WriteLine($"== {Label(method)}");
        stdout.WriteLine(sparseRun.Text);
        stdout.WriteLine();
        Table.Write(stdout, ["", "dense", Label(method)],
        [
            ["time to first token", Milliseconds(denseRun.Stats.TimeToFirstToken), Milliseconds(sparseRun.Stats.TimeToFirstToken)],
            ["decode tokens/s", Rate(denseRun.Stats.DecodeTokensPerSecond), Rate(sparseRun.Stats.DecodeTokensPerSecond)],
            ["KV cache read per step", Percent(denseRun.Stats.CacheReadFraction), Percent(sparseRun.Stats.CacheReadFraction)],
            ["tokens generated", denseRun.TokenIds.Count.ToString(CultureInfo.InvariantCulture), sparseRun.TokenIds.Count.ToString(CultureInfo.InvariantCulture)],
        ]);
        stdout.WriteLine(Agreement(denseRun.TokenIds, sparseRun.TokenIds));
        return CliApp.Ok;
    }

    /// <summary>How many of the sparse run's tokens equal dense's at the same position, and where they first differ.</summary>
    internal static string Agreement(IReadOnlyList<int> dense, IReadOnlyList<int> sparse)
    {
        var length = Math.Min(dense.Count, sparse.Count);
        var same = Enumerable.Range(0, length).Count(i => dense[i] == sparse[i]);
        var first = Enumerable.Range(0, length).FirstOrDefault(i => dense[i] != sparse[i], -1);
        var agreement = string.Create(CultureInfo.InvariantCulture, $"agreement: {same} of {Math.Max(dense.Count, sparse.Count)} tokens equal dense's");
        return first < 0 && dense.Count == sparse.Count ? agreement + " (identical)" : agreement + $" (first difference at token {(first < 0 ? length : first)})";
    }

    /// <summary>A file of this repository, found above the program's folder, the current directory (a published CLI) or <paramref name="near"/>.</summary>
    private static string RepositoryFile(string relative, string? near = null)
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory(), near is null ? null : Path.GetDirectoryName(Path.GetFullPath(near)) }.OfType<string>())
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, relative);
                if (File.Exists(candidate))
                {
                    return candidate;
                }
            }
        }
        throw new UsageException($"demo: {relative} not found above the program's folder or the current directory; give MODEL.onnx and --prompt");
    }

    private static string DefaultPrompt(string model)
    {
        var text = File.ReadAllText(RepositoryFile(DefaultPromptFile, model));
        var end = text.IndexOf(DefaultPromptEnd, StringComparison.Ordinal);
        return end < 0 ? text : text[..(end + DefaultPromptEnd.Length)];
    }

    /// <summary>The tokenizer's model_max_length beside <paramref name="source"/> (the context the model was trained for), or null.</summary>
    private static long? TrainedContext(string source)
    {
        var path = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(source))!, "tokenizer_config.json");
        if (!File.Exists(path))
        {
            return null;
        }
        using var document = JsonDocument.Parse(File.ReadAllText(path));
        return document.RootElement.TryGetProperty("model_max_length", out var value) && value.TryGetInt64(out var length) && length is > 0 and <= 1 << 20
            ? length : null;
    }

    private static string Label(MethodConfig method) =>
        method.Method + string.Concat(method.Parameters.OrderBy(p => p.Key).Select(p => string.Create(CultureInfo.InvariantCulture, $"-{p.Key}{p.Value}")));

    /// <summary>The model folder for <paramref name="method"/>: patched with a KV cache unless already there.</summary>
    private static string Patch(string source, MethodConfig method, string folder, TextWriter log)
    {
        var output = Path.Combine(folder, "model.onnx");
        if (File.Exists(RuntimeConfig.PathBeside(output)) && File.GetLastWriteTimeUtc(output) >= File.GetLastWriteTimeUtc(source))
        {
            return folder;
        }
        log.WriteLine($"demo: patching {source} with {Label(method)} -> {folder}");
        var model = ModelFiles.Load(source);
        var calibration = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(source))!, "calibration.onnx");
        var result = ModelPatcher.Patch(model.Proto, new PatchOptions
        {
            Method = method,
            AddCache = true,
            MaxLength = Math.Max(PatchOptions.DefaultMaxLength, TrainedContext(source) ?? 0),
            Calibration = File.Exists(calibration) ? CalibrationData.Load(calibration) : null,
        });
        ModelFiles.SavePatched(model, result, output, verify: null);
        return folder;
    }

    private static GenerationResult Generate(string folder, ModelOptions options, string prompt, GeneratorSettings settings)
    {
        using var model = Model.Load(folder, options);
        model.Generate("import os\n", settings with { MaxNewTokens = 2 }); // warm-up
        return model.Generate(prompt, settings);
    }

    private static string Milliseconds(TimeSpan time) => time.TotalMilliseconds.ToString("F1", CultureInfo.InvariantCulture) + " ms";

    private static string Rate(double value) => value.ToString("F1", CultureInfo.InvariantCulture);

    private static string Percent(double value) => (100 * value).ToString("F1", CultureInfo.InvariantCulture) + "%";
}
