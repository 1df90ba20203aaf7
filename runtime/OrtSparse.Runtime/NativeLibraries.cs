namespace OrtSparse.Runtime;

/// <summary>Finds the native libraries OrtSparse loads at run time.</summary>
public static class NativeLibraries
{
    /// <summary>File name of the OrtSparse custom-op library.</summary>
    public const string OpLibraryFileName = "libortsparse_ops.so";

    /// <summary>File name of ONNX Runtime's CUDA execution provider plugin.</summary>
    public const string CudaProviderFileName = "libonnxruntime_providers_cuda.so";

    /// <summary>File name of the ONNX Runtime Extensions custom-op library (the tokenizer op).</summary>
    public const string ExtensionsFileName = "libortextensions.so";

    /// <summary>Resolves the op library path, or throws a <see cref="FileNotFoundException"/> that says where it looked.</summary>
    /// <param name="explicitPath">A path given by the caller, used as is when not null.</param>
    public static string ResolveOpLibrary(string? explicitPath = null) =>
        Resolve(explicitPath, "ORTSPARSE_OPS_LIBRARY", OpLibraryFileName, "build-native/lib",
            "build it with ./build.sh, or set ORTSPARSE_OPS_LIBRARY");

    /// <summary>Resolves the CUDA provider path, or throws a <see cref="FileNotFoundException"/> that says where it looked.</summary>
    /// <param name="explicitPath">A path given by the caller, used as is when not null.</param>
    public static string ResolveCudaProvider(string? explicitPath = null) =>
        Resolve(explicitPath, "ORTSPARSE_CUDA_PROVIDER", CudaProviderFileName, "build-native/lib",
            "fetch it with build/fetch-deps.sh --gpu and rebuild, or set ORTSPARSE_CUDA_PROVIDER");

    /// <summary>Resolves the ONNX Runtime Extensions library path, or throws a <see cref="FileNotFoundException"/> that says where it looked.</summary>
    /// <param name="explicitPath">A path given by the caller, used as is when not null.</param>
    public static string ResolveExtensions(string? explicitPath = null) =>
        Resolve(explicitPath, "ORTSPARSE_EXTENSIONS_LIBRARY", ExtensionsFileName, ".deps/onnxruntime-extensions/lib",
            "fetch it with build/fetch-deps.sh and rebuild (it is copied next to every app that references the runtime), or set ORTSPARSE_EXTENSIONS_LIBRARY");

    // repositoryFolder: where the library lies in a checkout, relative to the repository root.
    private static string Resolve(string? explicitPath, string environmentVariable, string fileName, string repositoryFolder, string hint)
    {
        var candidates = new List<string>();
        if (explicitPath is not null)
        {
            candidates.Add(explicitPath);
        }
        else
        {
            if (Environment.GetEnvironmentVariable(environmentVariable) is { Length: > 0 } fromEnvironment)
            {
                candidates.Add(fromEnvironment);
            }
            candidates.Add(Path.Combine(AppContext.BaseDirectory, fileName));
            if (FindRepositoryRoot() is { } root)
            {
                candidates.Add(Path.Combine(root, repositoryFolder, fileName));
            }
        }
        foreach (var candidate in candidates)
        {
            if (File.Exists(candidate))
            {
                return Path.GetFullPath(candidate);
            }
        }
        throw new FileNotFoundException(
            $"{fileName} not found (looked in: {string.Join(", ", candidates)}); {hint}.", fileName);
    }

    private static string? FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "OrtSparse.sln")))
            {
                return dir.FullName;
            }
        }
        return null;
    }
}
