using OrtSparse.Runtime.Text;

namespace OrtSparse.Cli.Bench.Fidelity;

/// <summary>Held-out text as one token stream: the files of the given paths, tokenized, joined by an end-of-text token.</summary>
public static class HeldOutText
{
    /// <summary>The files <paramref name="paths"/> name: each file itself, and every file under each directory, in ordinal order of path.</summary>
    /// <param name="paths">Files and directories.</param>
    /// <exception cref="FileNotFoundException">A path is neither a file nor a directory, or the paths hold no file.</exception>
    public static IReadOnlyList<string> Files(IReadOnlyList<string> paths)
    {
        ArgumentNullException.ThrowIfNull(paths);
        var files = new List<string>();
        foreach (var path in paths)
        {
            if (File.Exists(path))
            {
                files.Add(Path.GetFullPath(path));
            }
            else if (Directory.Exists(path))
            {
                files.AddRange(Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories).Select(Path.GetFullPath).Order(StringComparer.Ordinal));
            }
            else
            {
                throw new FileNotFoundException($"held-out text not found: {path} is neither a file nor a directory", path);
            }
        }
        return files.Count > 0 ? files : throw new FileNotFoundException($"no held-out text: {string.Join(", ", paths)} hold no files");
    }

    /// <summary>
    /// The token stream of <paramref name="files"/>: each file's text encoded without special tokens added,
    /// <paramref name="separator"/> between consecutive files (as documents are joined in training).
    /// </summary>
    /// <param name="tokenizer">The model's tokenizer.</param>
    /// <param name="files">The files, in order.</param>
    /// <param name="separator">The end-of-text token id.</param>
    public static int[] Tokens(Tokenizer tokenizer, IReadOnlyList<string> files, int separator)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(files);
        var stream = new List<int>();
        foreach (var file in files)
        {
            if (stream.Count > 0)
            {
                stream.Add(separator);
            }
            stream.AddRange(tokenizer.Encode(File.ReadAllText(file)));
        }
        return [.. stream];
    }

    /// <summary>
    /// <paramref name="count"/> windows of <paramref name="length"/> tokens spread evenly over <paramref name="stream"/>:
    /// the first at its start, the last at its end (one window: the start).
    /// </summary>
    /// <param name="stream">The token stream.</param>
    /// <param name="count">Windows, at least 1.</param>
    /// <param name="length">Tokens per window, at least 1.</param>
    /// <exception cref="ArgumentException">The stream is shorter than one window.</exception>
    public static int[][] Windows(int[] stream, int count, int length)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        if (stream.Length < length)
        {
            throw new ArgumentException($"the held-out text has {stream.Length} tokens, fewer than one window of {length} (--context); give more text");
        }
        var room = stream.Length - length;
        return Enumerable.Range(0, count)
            .Select(i => count == 1 ? 0 : (int)Math.Round((double)i * room / (count - 1), MidpointRounding.AwayFromZero))
            .Select(start => stream[start..(start + length)])
            .ToArray();
    }
}
