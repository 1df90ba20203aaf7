using OrtSparse.Onnx;

namespace OrtSparse.Cli;

/// <summary>Reading models and writing patched ones safely: checked first, moved into place whole, never over the input.</summary>
internal static class ModelFiles
{
    public static OnnxModel Load(string path) => OnnxModel.Load(path);

    /// <summary>Throws a <see cref="UsageException"/> when <paramref name="output"/> names the same file as <paramref name="input"/>.</summary>
    public static void EnsureDistinct(string input, string output)
    {
        if (SameFile(input, output))
        {
            throw new UsageException($"-o {output} would overwrite the input model {input}; write the patched model elsewhere");
        }
    }

    /// <summary>
    /// Saves <paramref name="model"/> into a staging folder beside <paramref name="output"/>, runs
    /// <paramref name="verify"/> on the staged file, then moves the external data (if any) and the
    /// model into place. A model that fails verification is never written to <paramref name="output"/>.
    /// </summary>
    public static void Save(OnnxModel model, string output, Action<string>? verify)
    {
        var target = Path.GetFullPath(output);
        var folder = Path.GetDirectoryName(target)!;
        Directory.CreateDirectory(folder);
        var staging = Directory.CreateDirectory(Path.Combine(folder, $".ortsparse-staging-{Guid.NewGuid():N}")).FullName;
        try
        {
            var staged = Path.Combine(staging, Path.GetFileName(target));
            model.Save(staged);
            verify?.Invoke(staged);
            // Data files first: the model must never name data that is not in place yet.
            foreach (var file in Directory.GetFiles(staging).Where(f => f != staged))
            {
                File.Move(file, Path.Combine(folder, Path.GetFileName(file)), overwrite: true);
            }
            File.Move(staged, target, overwrite: true);
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
