using System.Globalization;

namespace OrtSparse.Cli;

/// <summary>Token id files: whitespace- or comma-separated non-negative integers, one sequence per file.</summary>
internal static class TokenFiles
{
    /// <summary>The token ids of <paramref name="path"/>; an error names the file and the first bad entry.</summary>
    public static long[] Read(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"token file not found: {path}", path);
        }
        var text = File.ReadAllText(path);
        var parts = text.Split([' ', '\t', '\r', '\n', ','], StringSplitOptions.RemoveEmptyEntries);
        var tokens = new long[parts.Length];
        for (var i = 0; i < parts.Length; i++)
        {
            if (!long.TryParse(parts[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out tokens[i]) || tokens[i] < 0)
            {
                throw new InvalidDataException($"{path}: token {i} ('{parts[i]}') is not a non-negative integer id");
            }
        }
        return tokens.Length > 0 ? tokens : throw new InvalidDataException($"{path} holds no token ids");
    }
}

/// <summary>Progress reported on the calling thread, in order (Progress&lt;T&gt; posts to the thread pool).</summary>
internal sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
