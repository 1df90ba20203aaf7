using System.Collections.Concurrent;
using System.Text.Json;
using Google.Protobuf;
using OrtSparse.GraphRewriter;
using OrtSparse.Onnx;

namespace OrtSparse.Runtime.Tests;

/// <summary>The committed tiny Llama (models/tiny-llama), patched with a KV cache and a method into a temporary model folder, once per test run.</summary>
internal static class PatchedModels
{
    private static readonly ConcurrentDictionary<string, Lazy<string>> Folders = new();

    public static string TinyLlamaFolder => RepositoryFiles.PathOf("models/tiny-llama");

    /// <summary>A folder with model.onnx, model.ortsparse.json and the tokenizer, patched with <paramref name="method"/>.</summary>
    public static string TinyLlama(string method = "dense", IReadOnlyDictionary<string, double>? parameters = null)
    {
        var key = method + string.Concat((parameters ?? new Dictionary<string, double>()).OrderBy(p => p.Key).Select(p => $",{p.Key}={p.Value}"));
        return Folders.GetOrAdd(key, _ => new Lazy<string>(() => Patch(method, parameters))).Value;
    }

    private static string Patch(string method, IReadOnlyDictionary<string, double>? parameters)
    {
        var model = OnnxModel.Load(Path.Combine(TinyLlamaFolder, "model.onnx")).Proto;
        var result = ModelPatcher.Patch(model, new PatchOptions
        {
            Method = new MethodConfig { Method = method, Parameters = parameters ?? new Dictionary<string, double>() },
            AddCache = true,
        });
        var folder = Path.Combine(Path.GetTempPath(), $"ortsparse-runtime-tests-{Environment.ProcessId}", method + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(folder);
        File.WriteAllBytes(Path.Combine(folder, "model.onnx"), result.Model.ToByteArray());
        File.WriteAllText(Path.Combine(folder, "model.ortsparse.json"), RuntimeConfig.ToJson(result, "model.onnx"));
        foreach (var file in new[] { "tokenizer.json", "tokenizer_config.json" })
        {
            File.Copy(Path.Combine(TinyLlamaFolder, file), Path.Combine(folder, file));
        }
        return folder;
    }

    /// <summary>PyTorch's greedy continuations of the tiny Llama (models/tiny-llama/generation.json).</summary>
    public static IReadOnlyList<(string Prompt, int[] PromptIds, int[] GreedyIds, string GreedyText)> Generations()
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(TinyLlamaFolder, "generation.json")));
        return json.RootElement.GetProperty("runs").EnumerateArray().Select(r => (
            r.GetProperty("prompt").GetString()!,
            r.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
            r.GetProperty("greedy_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
            r.GetProperty("greedy_text").GetString()!)).ToList();
    }
}
