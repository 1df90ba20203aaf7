using System.Text.RegularExpressions;
using OrtSparse.Cli;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>`ortsparse patch --add-cache` into a model folder, then `generate` from it: the text, the closing numbers, and errors.</summary>
public sealed class GenerateCommandTests : IDisposable
{
    private readonly string _scratch = Directory.CreateTempSubdirectory("ortsparse-generate-cli-").FullName;

    public void Dispose() => Directory.Delete(_scratch, recursive: true);

    private static (int Code, string Out, string Err) Run(params string[] args) => CliTests.Cli(args);

    private string PatchedFolder()
    {
        var folder = Path.Combine(_scratch, "tiny");
        var source = Path.Combine(CliTests.RepositoryRoot(), "models", "tiny-llama", "model.onnx");
        var (code, output, error) = Run("patch", source, "-o", Path.Combine(folder, "model.onnx"), "--add-cache", "--method", "dense");
        Assert.True(code == CliApp.Ok, error);
        Assert.Contains("tokenizer.json, tokenizer_config.json copied beside it", output);
        return folder;
    }

    /// <summary>Greedy text from the patched folder is PyTorch's greedy continuation, decoded, followed by the numbers.</summary>
    [Fact]
    public void GenerateStreamsTheTextThenTheNumbers()
    {
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(CliTests.RepositoryRoot(), "models", "tiny-llama", "generation.json")));
        var run = json.RootElement.GetProperty("runs")[0];
        var folder = PatchedFolder();
        var (code, output, error) = Run("generate", folder, "--prompt", run.GetProperty("prompt").GetString()!, "--max-new", "24", "--threads", "1",
            "--device", TestDevice.IsCuda ? "cuda" : "cpu");
        Assert.True(code == CliApp.Ok, error);
        var greedy = run.GetProperty("greedy_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        // The tokenizer's end token (id 0) would stop it; PyTorch's 24 tokens hold none.
        Assert.DoesNotContain(0, greedy);
        var text = run.GetProperty("greedy_text").GetString()!;
        Assert.StartsWith(text.Replace("<|endoftext|>", ""), output);
        Assert.Matches(new Regex(@"-- length; prompt \d+ tokens, generated 24; time to first token [\d.]+ ms, prefill \d+ tokens/s, decode [\d.]+ tokens/s, KV cache read 100\.0% per step \(dense"), output);
    }

    [Fact]
    public void BadInputsAreNamed()
    {
        var folder = PatchedFolder();
        Assert.Contains("unknown device 'tpu'", Run("generate", folder, "--prompt", "x", "--device", "tpu").Err);
        Assert.Contains("The prompt is empty", Run("generate", folder, "--prompt", "").Err);
        Assert.Contains("needs --prompt", Run("generate", folder).Err);
        var missing = Run("generate", Path.Combine(_scratch, "nowhere"), "--prompt", "x");
        Assert.Equal(CliApp.Failed, missing.Code);
        Assert.Contains("nowhere", missing.Err);
        var unpatched = Run("generate", Path.Combine(CliTests.RepositoryRoot(), "models", "tiny-llama"), "--prompt", "x");
        Assert.Contains("ortsparse patch", unpatched.Err);
        Assert.Contains("leaves no room", Run("generate", folder, "--prompt", "def fibonacci(n):", "--max-length", "5").Err);
    }
}
