using System.Globalization;
using Google.Protobuf;
using Onnx;

namespace OrtSparse.Onnx;

/// <summary>
/// An ONNX model and the file it came from. External tensor data is not read when loading, only
/// when a tensor is read or the model is saved; it is resolved against <see cref="BaseDirectory"/>.
/// </summary>
public sealed class OnnxModel
{
    // Data file offsets are page aligned so that runtimes can memory-map tensors.
    private const int ExternalDataAlignment = 4096;

    /// <summary>Wraps <paramref name="proto"/>.</summary>
    /// <param name="proto">The model.</param>
    /// <param name="sourcePath">
    /// The file the model (or the model it was derived from) was loaded from, or null for a model built
    /// in memory. External data is found next to it, and <see cref="Save"/> will not overwrite it by default.
    /// </param>
    public OnnxModel(ModelProto proto, string? sourcePath = null)
    {
        ArgumentNullException.ThrowIfNull(proto);
        Proto = proto;
        SourcePath = sourcePath is null ? null : Path.GetFullPath(sourcePath);
    }

    /// <summary>The model itself; edit it freely.</summary>
    public ModelProto Proto { get; }

    /// <summary>The full path of the file the model came from, or null for a model built in memory.</summary>
    public string? SourcePath { get; private set; }

    /// <summary>The folder that external data locations are relative to, or null for a model built in memory.</summary>
    public string? BaseDirectory => SourcePath is null ? null : Path.GetDirectoryName(SourcePath);

    /// <summary>
    /// Reads the model at <paramref name="path"/> and checks that every external data file it names
    /// exists and is long enough. Tensor data in those files is not read.
    /// </summary>
    /// <param name="path">The .onnx file.</param>
    /// <exception cref="OnnxFormatException">The file is missing, is not an ONNX model, or names missing or too short external data.</exception>
    public static OnnxModel Load(string path)
    {
        const string kind = "an ONNX model";
        var proto = ProtobufFile.Read(path, ModelProto.Parser, kind);
        // Protobuf parses many byte strings that are not models without complaint; these fields tell a model apart.
        var missing = proto.IrVersion <= 0 ? "it has no ir_version"
            : proto.Graph is null ? "it has no graph"
            : proto.IrVersion >= 3 && proto.OpsetImport.Count == 0 ? "it has no opset_import"
            : null;
        if (missing is not null)
        {
            throw new OnnxFormatException(path, $"not {kind}: {missing}");
        }

        var model = new OnnxModel(proto, path);
        foreach (var stored in ModelTensors.All(proto).Where(s => ExternalDataReference.IsExternal(s.Tensor)))
        {
            ExternalDataReference.Parse(stored.Tensor, model.BaseDirectory).CheckRange(TensorLayout.ByteCount(stored.Tensor));
        }
        return model;
    }

    /// <summary>
    /// Writes the model to <paramref name="path"/> and, where tensors go to external data, the data file
    /// next to it. Both are written to temporary files first and renamed into place only when complete,
    /// so a failed save leaves existing files as they were. The model itself is not changed, except after
    /// overwriting files it reads (see <see cref="SaveOptions.AllowOverwriteSource"/>): then it is
    /// pointed at the files just written.
    /// </summary>
    /// <param name="path">The .onnx file to create or replace.</param>
    /// <param name="options">Where tensor data goes and whether the source may be overwritten; null for defaults.</param>
    /// <exception cref="IOException">The save would overwrite the model's own files without <see cref="SaveOptions.AllowOverwriteSource"/>.</exception>
    /// <exception cref="OnnxFormatException">External data cannot be read, or the model file would exceed protobuf's 2 GiB limit.</exception>
    public void Save(string path, SaveOptions? options = null)
    {
        options ??= new SaveOptions();
        if (options.ExternalDataThreshold < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), "ExternalDataThreshold must not be negative");
        }
        var modelPath = Path.GetFullPath(path);
        var modelFolder = Path.GetDirectoryName(modelPath)!;
        var dataLocation = options.ExternalDataLocation ?? Path.GetFileName(modelPath) + ".data";
        var dataPath = ExternalDataReference.ResolveLocation(modelFolder, dataLocation);
        if (dataPath is null || dataPath == modelPath)
        {
            throw new ArgumentException($"ExternalDataLocation '{dataLocation}' must be a relative path inside the model's folder, other than the model file", nameof(options));
        }

        var sources = ModelTensors.All(Proto).ToList();
        var goesExternal = sources.Select(s => GoesExternal(s, options.ExternalDataThreshold)).ToList();
        var writesData = goesExternal.Contains(true);
        var overwritten = FilesRead(sources).Intersect(writesData ? [modelPath, dataPath] : [modelPath]).ToList();
        if (overwritten.Count > 0 && !options.AllowOverwriteSource)
        {
            throw new IOException($"refusing to overwrite '{overwritten[0]}', a file the model was loaded from; save elsewhere or set SaveOptions.AllowOverwriteSource");
        }

        var output = Proto.Clone();
        var outputs = ModelTensors.All(output).ToList();
        using var dataFile = writesData ? new PendingFile(dataPath) : null;
        for (var i = 0; i < sources.Count; i++)
        {
            if (goesExternal[i])
            {
                var offset = AlignedPosition(dataFile!.Stream);
                var length = WriteData(sources[i].Tensor, dataFile.Stream);
                PointAtExternal(outputs[i].Tensor, dataLocation, offset, length);
            }
            else if (ExternalDataReference.IsExternal(sources[i].Tensor))
            {
                MakeInline(outputs[i].Tensor, OnnxTensor.ReadBytes(sources[i].Tensor, BaseDirectory));
            }
        }
        CheckProtobufLimit(output, modelPath);
        using var modelFile = new PendingFile(modelPath);
        output.WriteTo(modelFile.Stream);
        // Data first: the new model file must never name data that is not there yet.
        dataFile?.Commit();
        modelFile.Commit();

        if (overwritten.Count > 0)
        {
            for (var i = 0; i < sources.Count; i++)
            {
                CopyPlacement(outputs[i].Tensor, sources[i].Tensor);
            }
            SourcePath = modelPath;
        }
    }

    /// <summary>
    /// Without a threshold, and for inline parts of sparse tensors, data stays where it is; otherwise
    /// its size decides. Types without a fixed size (STRING) stay where they are.
    /// </summary>
    private static bool GoesExternal(StoredTensor stored, long? threshold)
    {
        var external = ExternalDataReference.IsExternal(stored.Tensor);
        if (threshold is null || !(stored.Movable || external))
        {
            return external;
        }
        return TensorLayout.ByteCount(stored.Tensor) is { } size ? size >= threshold : external;
    }

    /// <summary>The model file and the external data files the tensors read from.</summary>
    private IEnumerable<string> FilesRead(IEnumerable<StoredTensor> tensors) =>
        tensors.Where(s => ExternalDataReference.IsExternal(s.Tensor))
            .Select(s => ExternalDataReference.Parse(s.Tensor, BaseDirectory).FilePath)
            .Append(SourcePath)
            .OfType<string>()
            .Distinct();

    private static long AlignedPosition(Stream stream)
    {
        var padding = (int)(-stream.Position & (ExternalDataAlignment - 1));
        stream.Write(new byte[padding]);
        return stream.Position;
    }

    private long WriteData(TensorProto tensor, Stream destination)
    {
        var byteCount = TensorLayout.ByteCount(tensor);
        if (ExternalDataReference.IsExternal(tensor))
        {
            return ExternalDataReference.Parse(tensor, BaseDirectory).CopyTo(destination, byteCount);
        }
        var bytes = OnnxTensor.ReadBytes(tensor);
        destination.Write(bytes);
        return bytes.Length;
    }

    private static void PointAtExternal(TensorProto tensor, string location, long offset, long length)
    {
        // Keys this library does not manage (a checksum, say) describe the same bytes and stay.
        var otherEntries = tensor.ExternalData
            .Where(e => e.Key is not (ExternalDataReference.LocationKey or ExternalDataReference.OffsetKey or ExternalDataReference.LengthKey))
            .ToList();
        TensorLayout.ClearInlineData(tensor);
        tensor.ExternalData.Clear();
        tensor.ExternalData.Add(new StringStringEntryProto { Key = ExternalDataReference.LocationKey, Value = location });
        tensor.ExternalData.Add(new StringStringEntryProto { Key = ExternalDataReference.OffsetKey, Value = offset.ToString(CultureInfo.InvariantCulture) });
        tensor.ExternalData.Add(new StringStringEntryProto { Key = ExternalDataReference.LengthKey, Value = length.ToString(CultureInfo.InvariantCulture) });
        tensor.ExternalData.Add(otherEntries);
        tensor.DataLocation = TensorProto.Types.DataLocation.External;
    }

    private static void MakeInline(TensorProto tensor, byte[] bytes)
    {
        tensor.ExternalData.Clear();
        tensor.ClearDataLocation();
        tensor.RawData = UnsafeByteOperations.UnsafeWrap(bytes);
    }

    /// <summary>Gives <paramref name="to"/> the data placement of its saved copy <paramref name="from"/>.</summary>
    private static void CopyPlacement(TensorProto from, TensorProto to)
    {
        if (ExternalDataReference.IsExternal(from))
        {
            TensorLayout.ClearInlineData(to);
            to.ExternalData.Clear();
            to.ExternalData.Add(from.ExternalData);
            to.DataLocation = TensorProto.Types.DataLocation.External;
        }
        else if (ExternalDataReference.IsExternal(to))
        {
            MakeInline(to, from.RawData.ToByteArray());
        }
    }

    private static void CheckProtobufLimit(ModelProto model, string path)
    {
        var inlineBytes = ModelTensors.All(model).Sum(s => TensorLayout.InlineSize(s.Tensor));
        // CalculateSize wraps around past int.MaxValue, so only trust it once the tensor data fits.
        if (inlineBytes > int.MaxValue || model.CalculateSize() < 0)
        {
            throw new OnnxFormatException(path,
                $"the model would exceed protobuf's 2 GiB limit ({inlineBytes} bytes of inline tensor data); set SaveOptions.ExternalDataThreshold to move large tensors to external data");
        }
    }
}
