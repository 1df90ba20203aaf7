using System.Text.Encodings.Web;
using System.Text.Json;

namespace OrtSparse.GraphRewriter;

/// <summary>
/// The runtime config written beside a patched model, in the spirit of ONNX Runtime GenAI's
/// genai_config.json: per layer the heads, head size, cache inputs and outputs, maximum length,
/// method and method state tensors, and the op library the model needs. The schema is in
/// docs/runtime-config.md.
/// </summary>
public static class RuntimeConfig
{
    /// <summary>The value of the config's <c>format</c> field.</summary>
    public const string Format = "ortsparse.runtime_config";

    /// <summary>The schema version (<c>format_version</c>); it changes when a field changes meaning or goes away.</summary>
    public const int FormatVersion = 1;

    /// <summary>The file name of the op library a session must register (docs/ops.md).</summary>
    public const string OpLibrary = "libortsparse_ops.so";

    /// <summary>
    /// Where the config of <paramref name="modelPath"/> goes: beside it, the model's name without
    /// <c>.onnx</c> followed by <c>.ortsparse.json</c> (<c>model.onnx</c> → <c>model.ortsparse.json</c>),
    /// or by <c>.json</c> when that name already ends in <c>.ortsparse</c> (<c>model.ortsparse.onnx</c> →
    /// <c>model.ortsparse.json</c>).
    /// </summary>
    /// <param name="modelPath">The patched model's path.</param>
    public static string PathBeside(string modelPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelPath);
        var stem = modelPath.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase) ? modelPath[..^".onnx".Length] : modelPath;
        return stem.EndsWith(".ortsparse", StringComparison.Ordinal) ? stem + ".json" : stem + ".ortsparse.json";
    }

    /// <summary>The config of a patch, as indented JSON.</summary>
    /// <param name="result">What <see cref="ModelPatcher.Patch"/> did.</param>
    /// <param name="modelFileName">The patched model's file name, which the config names (it sits beside it).</param>
    public static string ToJson(PatchResult result, string modelFileName)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentException.ThrowIfNullOrEmpty(modelFileName);
        var lengths = result.Layers.Select(l => l.Rotary?.TablePositions).OfType<long>().ToList();
        var config = new
        {
            format = Format,
            format_version = FormatVersion,
            producer = new { name = "ortsparse", version = ModelPatcher.ToolVersion },
            model = modelFileName,
            op = new { domain = SparseAttentionOp.Domain, version = SparseAttentionOp.DomainVersion, op_type = SparseAttentionOp.OpType, library = OpLibrary },
            num_layers = result.Layers.Count,
            max_length = lengths.Count > 0 ? lengths.Min() : (long?)null,
            layers = result.Layers.Select(Layer),
            left = result.Left.Select(s => new { node = s.NodeName, form = s.Kind, reason = s.UnsupportedReason }),
        };
        return JsonSerializer.Serialize(config, JsonOptions(indented: true));
    }

    private static object Layer(PatchedLayer layer)
    {
        var site = layer.Plan.Site;
        return new
        {
            layer = layer.Plan.Layer,
            node = site.NodeName,
            form = site.Kind,
            num_heads = site.NumHeads,
            kv_num_heads = site.KvNumHeads,
            head_size = site.HeadDim,
            element_type = site.ElementType,
            cache = site.PastKey is null && site.PresentKey is null ? null : new
            {
                mode = layer.SharedBufferCache ? "shared_buffer" : "concat",
                added = layer.CacheAdded,
                past_key = site.PastKey,
                past_value = site.PastValue,
                present_key = site.PresentKey,
                present_value = site.PresentValue,
            },
            rotary = layer.Rotary is { } rotary ? new { interleaved = rotary.Interleaved } : null,
            max_length = layer.Rotary?.TablePositions,
            method = new { name = layer.Plan.Method.Method, parameters = ParametersOf(layer.Plan.Method) },
            state = layer.State is { } state
                ? new
                {
                    slot = state.Slot,
                    input = state.Input,
                    output = state.Output,
                    element_type = state.ElementType,
                    shape = new object[] { "batch_size", state.KvNumHeads, "state_length", state.Width },
                }
                : null,
        };
    }

    /// <summary>The parameters given to a method, by name.</summary>
    internal static SortedDictionary<string, double> ParametersOf(MethodConfig method) => new(method.Parameters.ToDictionary(), StringComparer.Ordinal);

    /// <summary>How the rewriter writes JSON: non-ASCII text (e.g. in reasons) as is.</summary>
    internal static JsonSerializerOptions JsonOptions(bool indented) =>
        new() { WriteIndented = indented, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
}
