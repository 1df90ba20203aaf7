using Onnx;

namespace OrtSparse.GraphRewriter;

/// <summary>The opset versions a model imports.</summary>
internal static class Opsets
{
    /// <summary>The contrib-op domain of ONNX Runtime (GroupQueryAttention, MultiHeadAttention, RotaryEmbedding).</summary>
    public const string MicrosoftDomain = "com.microsoft";

    /// <summary>The ONNX opset imported for glue nodes when a model imports none (contrib-only graphs).</summary>
    public const long GlueVersion = 17;

    /// <summary>The version of the default ONNX domain the model imports, or null.</summary>
    public static long? OnnxVersion(ModelProto model) =>
        model.OpsetImport.FirstOrDefault(o => o.Domain is "" or "ai.onnx")?.Version;

    public static bool IsOnnxDomain(string domain) => domain is "" or "ai.onnx";

    /// <summary>Adds (or checks) the import of <paramref name="domain"/> at <paramref name="version"/>.</summary>
    public static void Import(ModelProto model, string domain, long version)
    {
        var existing = model.OpsetImport.FirstOrDefault(o => o.Domain == domain);
        if (existing is null)
        {
            model.OpsetImport.Add(new OperatorSetIdProto { Domain = domain, Version = version });
        }
        else if (existing.Version != version)
        {
            throw new InvalidOperationException($"The model already imports {domain} version {existing.Version}; this rewriter emits version {version}.");
        }
    }
}
