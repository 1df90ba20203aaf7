namespace OrtSparse.Onnx;

/// <summary>
/// A file that should hold an ONNX model, a serialized tensor or external tensor data is missing,
/// unreadable, or does not hold what the format requires. The message names the file and the problem.
/// </summary>
public sealed class OnnxFormatException : IOException
{
    /// <summary>Creates the exception for <paramref name="path"/>.</summary>
    /// <param name="path">The file at fault, or null for a tensor that lives only in memory.</param>
    /// <param name="problem">What is wrong, e.g. "not an ONNX model: ...".</param>
    /// <param name="innerException">The low-level error this one explains, if any.</param>
    public OnnxFormatException(string? path, string problem, Exception? innerException = null)
        : base(path is null ? problem : $"{path}: {problem}", innerException)
    {
        FilePath = path;
        Problem = problem;
    }

    /// <summary>The file at fault, or null for a tensor that lives only in memory.</summary>
    public string? FilePath { get; }

    /// <summary>What is wrong, without the path.</summary>
    public string Problem { get; }
}
