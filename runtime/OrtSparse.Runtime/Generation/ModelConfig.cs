using System.Text.Json;

namespace OrtSparse.Runtime.Generation;

/// <summary>
/// The runtime config that <c>ortsparse patch</c> writes beside a patched model
/// (<c>docs/runtime-config.md</c>): per attention layer its heads, cache tensors, method and state.
/// </summary>
/// <param name="Path">Where the config was read from.</param>
/// <param name="ModelFileName">The patched model's file name, in the config's folder.</param>
/// <param name="MaxLength">The positions every layer handles (its rotary table), or null when unknown.</param>
/// <param name="Layers">One entry per replaced attention layer, in layer order.</param>
public sealed record ModelConfig(string Path, string ModelFileName, int? MaxLength, IReadOnlyList<LayerConfig> Layers)
{
    /// <summary>The format name in the config's <c>format</c> field.</summary>
    public const string Format = "ortsparse.runtime_config";

    /// <summary>The newest <c>format_version</c> this runtime reads.</summary>
    public const int FormatVersion = 1;

    /// <summary>Reads and checks the config at <paramref name="path"/>.</summary>
    /// <exception cref="FileNotFoundException">No file at <paramref name="path"/>.</exception>
    /// <exception cref="InvalidDataException">The file is not a runtime config this runtime reads; the message says which field is wrong.</exception>
    public static ModelConfig Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Runtime config not found: {path}", path);
        }
        try
        {
            using var json = JsonDocument.Parse(File.ReadAllText(path));
            return Parse(json.RootElement, path);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not valid JSON: {e.Message}", e);
        }
        catch (Exception e) when (e is KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{path} is not an OrtSparse runtime config: {e.Message}", e);
        }
    }

    private static ModelConfig Parse(JsonElement root, string path)
    {
        if (String(root, "format") != Format)
        {
            throw new InvalidDataException($"{path}: format is '{String(root, "format")}', expected '{Format}'.");
        }
        var version = root.GetProperty("format_version").GetInt32();
        if (version > FormatVersion)
        {
            throw new InvalidDataException($"{path}: format_version {version} is newer than this runtime reads ({FormatVersion}); update OrtSparse.");
        }
        var layers = root.GetProperty("layers").EnumerateArray().Select(ParseLayer).ToList();
        return new ModelConfig(path, String(root, "model") ?? throw new InvalidDataException($"{path}: 'model' is missing."),
            OptionalInt(root, "max_length"), layers);
    }

    private static LayerConfig ParseLayer(JsonElement layer)
    {
        var cache = layer.GetProperty("cache");
        var method = layer.GetProperty("method");
        var state = layer.GetProperty("state");
        var methodName = String(method, "name") ?? "dense";
        var parameters = method.GetProperty("parameters").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetDouble());
        // quest's summary has a row per page of the cache; the other states a row per position.
        var rowsPerPage = methodName == "quest" ? (int)parameters.GetValueOrDefault("page_size", 16) : 1;
        return new LayerConfig(
            layer.GetProperty("layer").GetInt32(),
            String(layer, "node") ?? "",
            layer.GetProperty("num_heads").GetInt32(),
            layer.GetProperty("kv_num_heads").GetInt32(),
            OptionalInt(layer, "head_size"),
            String(layer, "element_type") ?? "float",
            cache.ValueKind == JsonValueKind.Null ? null : new CacheConfig(
                String(cache, "mode") == "shared_buffer",
                String(cache, "past_key"), String(cache, "past_value"), String(cache, "present_key"), String(cache, "present_value")),
            methodName,
            parameters,
            state.ValueKind == JsonValueKind.Null ? null : new StateConfig(
                String(state, "slot")!, String(state, "input")!, String(state, "output"), String(state, "element_type")!,
                state.GetProperty("shape")[3].GetInt32(), rowsPerPage));
    }

    private static string? String(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static int? OptionalInt(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number ? value.GetInt32() : null;
}

/// <summary>One attention layer of a <see cref="ModelConfig"/>.</summary>
/// <param name="Layer">The layer number.</param>
/// <param name="Node">The name of the layer's SparseAttention node.</param>
/// <param name="NumHeads">Query heads.</param>
/// <param name="KvNumHeads">Key/value heads.</param>
/// <param name="HeadSize">The head size, when the graph declares it.</param>
/// <param name="ElementType"><c>float</c> or <c>float16</c>: the cache's element type.</param>
/// <param name="Cache">The cache tensors, or null for a layer without a cache.</param>
/// <param name="Method">The op's method.</param>
/// <param name="Parameters">The method's parameters given to <c>patch</c>, by name.</param>
/// <param name="State">The method's state beside the cache, or null.</param>
public sealed record LayerConfig(int Layer, string Node, int NumHeads, int KvNumHeads, int? HeadSize, string ElementType, CacheConfig? Cache,
    string Method, IReadOnlyDictionary<string, double> Parameters, StateConfig? State);

/// <summary>A layer's cache tensors.</summary>
/// <param name="SharedBuffer">True when the op takes seqlens_k/total_sequence_length, so past and present can be one buffer; false for concat (present = past + this step).</param>
/// <param name="PastKey">The past-key graph input.</param>
/// <param name="PastValue">The past-value graph input.</param>
/// <param name="PresentKey">The present-key graph output.</param>
/// <param name="PresentValue">The present-value graph output.</param>
public sealed record CacheConfig(bool SharedBuffer, string? PastKey, string? PastValue, string? PresentKey, string? PresentValue);

/// <summary>A layer's method state, <c>[batch, kv_heads, rows, Width]</c>; rows follow the cache capacity (pages of it for <c>quest</c>).</summary>
/// <param name="Slot"><c>summary</c> or <c>index</c>.</param>
/// <param name="Input">The past-state graph input.</param>
/// <param name="Output">The present-state graph output, or null.</param>
/// <param name="ElementType"><c>int32</c>, <c>float</c> or <c>float16</c>.</param>
/// <param name="Width">The last dimension.</param>
/// <param name="RowsPerPage">Cache positions per row: quest's page size, else 1.</param>
public sealed record StateConfig(string Slot, string Input, string? Output, string ElementType, int Width, int RowsPerPage);
