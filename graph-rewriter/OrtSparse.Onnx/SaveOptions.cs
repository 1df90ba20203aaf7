namespace OrtSparse.Onnx;

/// <summary>How <see cref="OnnxModel.Save"/> writes a model.</summary>
public sealed record SaveOptions
{
    /// <summary>
    /// Where tensor data goes. Null (the default) keeps every tensor where it is: data that was in an
    /// external file is copied to <see cref="ExternalDataLocation"/>, inline data stays inline.
    /// A byte count places every initializer and attribute tensor by size: at least this many bytes
    /// go to the external data file, smaller ones inline. Protobuf cannot write a model file over
    /// 2 GiB, so large models need a threshold (1024 is what ONNX tools use).
    /// </summary>
    public long? ExternalDataThreshold { get; init; }

    /// <summary>
    /// The external data file, relative to the model's folder (and inside it).
    /// Null means the model's file name plus ".data", e.g. "model.onnx.data".
    /// </summary>
    public string? ExternalDataLocation { get; init; }

    /// <summary>
    /// Allows overwriting the file the model was loaded from, or an external data file it reads.
    /// Off by default, so that a mistyped output path cannot destroy the input.
    /// </summary>
    public bool AllowOverwriteSource { get; init; }
}
