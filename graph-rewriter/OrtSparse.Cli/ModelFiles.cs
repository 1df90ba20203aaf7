using OrtSparse.GraphRewriter;
using OrtSparse.Onnx;

namespace OrtSparse.Cli;

/// <summary>Reading models and writing patched ones safely: checked first, moved into place whole, never over the input.</summary>
internal static class ModelFiles
{
    public static OnnxModel Load(string path) => OnnxModel.Load(path);

    /// <summary>Throws a <see cref="UsageException"/> when <paramref name="output"/> names the same file as <paramref name="input"/>.</summary>
    /// <param name="input">The input model.</param>
    /// <param name="output">A file the command writes.</param>
    /// <param name="written">How the message names <paramref name="output"/>; default "-o OUTPUT".</param>
    /// <param name="inputKind">What the input is, for the message.</param>
    public static void EnsureDistinct(string input, string output, string? written = null, string inputKind = "model")
    {
        if (SameFile(input, output))
        {
            throw new UsageException($"{written ?? $"-o {output}"} would overwrite the input {inputKind} {input}; write it elsewhere");
        }
    }

    /// <summary>
    /// Saves what <see cref="ModelPatcher.Patch"/> made of <paramref name="source"/> as a model folder:
    /// the model at <paramref name="output"/>, its runtime config beside it and, when the output goes to
    /// another folder, the tokenizer files found beside the source (<see cref="Save"/>: all or nothing).
    /// </summary>
    /// <returns>The tokenizer files copied.</returns>
    public static IReadOnlyList<string> SavePatched(OnnxModel source, PatchResult result, string output, Action<string>? verify)
    {
        var besideFiles = new Dictionary<string, string>
        {
            [Path.GetFileName(RuntimeConfig.PathBeside(output))] = RuntimeConfig.ToJson(result, Path.GetFileName(output)),
        };
        var tokenizerFiles = source.SourcePath is null ? [] : TokenizerFilesBeside(source.SourcePath, output);
        foreach (var file in tokenizerFiles)
        {
            besideFiles[Path.GetFileName(file)] = File.ReadAllText(file);
        }
        Save(new OnnxModel(result.Model, source.SourcePath), output, verify, besideFiles);
        return tokenizerFiles;
    }

    /// <summary>The tokenizer files beside <paramref name="input"/>, to copy beside <paramref name="output"/> when it goes to another folder (a model folder is complete).</summary>
    private static IReadOnlyList<string> TokenizerFilesBeside(string input, string output)
    {
        var from = Path.GetDirectoryName(Path.GetFullPath(input))!;
        if (from == Path.GetDirectoryName(Path.GetFullPath(output)))
        {
            return [];
        }
        return new[] { "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json" }
            .Select(name => Path.Combine(from, name)).Where(File.Exists).ToList();
    }

    /// <summary>
    /// Saves <paramref name="model"/> and the text files of <paramref name="besideFiles"/> into a staging
    /// folder beside <paramref name="output"/>, runs <paramref name="verify"/> on the staged model, then
    /// moves the external data (if any), the model and the other files into place, each by a rename. A
    /// model that fails verification is never written to <paramref name="output"/>, nor are its files.
    /// </summary>
    /// <param name="model">The model.</param>
    /// <param name="output">The model's path.</param>
    /// <param name="verify">Checks the staged model file; null for none.</param>
    /// <param name="besideFiles">Text files that describe the model, by file name, written into the model's folder.</param>
    public static void Save(OnnxModel model, string output, Action<string>? verify, IReadOnlyDictionary<string, string>? besideFiles = null)
    {
        besideFiles ??= new Dictionary<string, string>();
        if (besideFiles.Keys.FirstOrDefault(name => name.Length == 0 || Path.GetFileName(name) != name) is { } path)
        {
            throw new ArgumentException($"'{path}' is not a file name; files beside the model go into its folder", nameof(besideFiles));
        }
        var target = Path.GetFullPath(output);
        var folder = Path.GetDirectoryName(target)!;
        Directory.CreateDirectory(folder);
        var staging = Directory.CreateDirectory(Path.Combine(folder, $".ortsparse-staging-{Guid.NewGuid():N}")).FullName;
        try
        {
            var staged = Path.Combine(staging, Path.GetFileName(target));
            model.Save(staged);
            foreach (var (name, text) in besideFiles)
            {
                File.WriteAllText(Path.Combine(staging, name), text);
            }
            verify?.Invoke(staged);
            // Data files first: the model must never name data that is not in place yet; then the files that describe it.
            foreach (var file in Directory.GetFiles(staging).Where(f => f != staged && !besideFiles.ContainsKey(Path.GetFileName(f))))
            {
                File.Move(file, Path.Combine(folder, Path.GetFileName(file)), overwrite: true);
            }
            File.Move(staged, target, overwrite: true);
            foreach (var name in besideFiles.Keys)
            {
                File.Move(Path.Combine(staging, name), Path.Combine(folder, name), overwrite: true);
            }
        }
        finally
        {
            Directory.Delete(staging, recursive: true);
        }
    }

    private static bool SameFile(string a, string b)
    {
        static string Resolve(string path)
        {
            var full = Path.GetFullPath(path);
            return File.Exists(full) && new FileInfo(full).ResolveLinkTarget(returnFinalTarget: true) is { } target ? target.FullName : full;
        }
        return string.Equals(Resolve(a), Resolve(b), StringComparison.Ordinal);
    }
}
