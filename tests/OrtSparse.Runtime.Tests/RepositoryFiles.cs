namespace OrtSparse.Runtime.Tests;

/// <summary>Paths of files checked into the repository (test data, models).</summary>
internal static class RepositoryFiles
{
    private static readonly Lazy<string> Root = new(FindRoot);

    /// <summary>The absolute path of <paramref name="relativePath"/> under the repository root.</summary>
    public static string PathOf(string relativePath) => Path.Combine(Root.Value, relativePath);

    // ORTSPARSE_REPOSITORY_ROOT lets a published test runner (GPU host) find the checkout.
    private static string FindRoot()
    {
        if (Environment.GetEnvironmentVariable("ORTSPARSE_REPOSITORY_ROOT") is { Length: > 0 } fromEnvironment)
        {
            return fromEnvironment;
        }
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "OrtSparse.sln")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException($"No OrtSparse.sln above {AppContext.BaseDirectory}; set ORTSPARSE_REPOSITORY_ROOT.");
    }
}
