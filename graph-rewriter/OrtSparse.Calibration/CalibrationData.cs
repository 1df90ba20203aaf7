using Onnx;
using OrtSparse.Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace OrtSparse.Calibration;

/// <summary>
/// Named calibration tensors (see <see cref="CalibrationNames"/>) and string metadata (seed, source
/// model, method parameters), saved as one ONNX file: a model whose graph has no nodes, whose
/// initializers are the tensors and whose metadata_props are the metadata, marked by
/// <see cref="FormatKey"/>. Any ONNX tool can open it; names and metadata are kept in ordinal order,
/// so equal data gives byte-identical files.
/// </summary>
public sealed class CalibrationData
{
    /// <summary>The metadata entry that marks a calibration file, holding <see cref="FormatVersion"/>.</summary>
    public const string FormatKey = "ortsparse.calibration.format";

    /// <summary>The version of the file layout this build writes and reads.</summary>
    public const string FormatVersion = "1";

    private const string GraphName = "ortsparse_calibration";

    private readonly SortedDictionary<string, CalibrationTensor> _tensors = new(StringComparer.Ordinal);
    private readonly SortedDictionary<string, string> _metadata = new(StringComparer.Ordinal);

    /// <summary>Creates empty calibration data.</summary>
    public CalibrationData()
    {
    }

    private CalibrationData(string sourcePath) => SourcePath = sourcePath;

    /// <summary>The full path of the file the data was loaded from; null for data built in memory.</summary>
    public string? SourcePath { get; }

    /// <summary>The tensor names, in ordinal order.</summary>
    public IReadOnlyCollection<string> TensorNames => _tensors.Keys;

    /// <summary>The metadata, in ordinal order of keys (without <see cref="FormatKey"/>).</summary>
    public IReadOnlyDictionary<string, string> Metadata => _metadata;

    /// <summary>Adds or replaces a tensor.</summary>
    /// <param name="name">A non-empty name, e.g. <see cref="CalibrationNames.LokiBasis"/>.</param>
    /// <param name="tensor">The tensor.</param>
    public void SetTensor(string name, CalibrationTensor tensor)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(tensor);
        _tensors[name] = tensor;
    }

    /// <summary>Adds or replaces a metadata entry.</summary>
    /// <param name="key">A non-empty key other than <see cref="FormatKey"/>.</param>
    /// <param name="value">The value.</param>
    public void SetMetadata(string key, string value)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        ArgumentNullException.ThrowIfNull(value);
        if (key == FormatKey)
        {
            throw new ArgumentException($"metadata key '{FormatKey}' is reserved for the file format version", nameof(key));
        }
        _metadata[key] = value;
    }

    /// <summary>Whether a tensor of that name is present.</summary>
    /// <param name="name">The tensor name.</param>
    public bool ContainsTensor(string name) => _tensors.ContainsKey(name);

    /// <summary>The tensor of that name.</summary>
    /// <param name="name">The tensor name.</param>
    /// <exception cref="OnnxFormatException">There is no such tensor; the message names the file and the tensor.</exception>
    public CalibrationTensor GetTensor(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (_tensors.TryGetValue(name, out var tensor))
        {
            return tensor;
        }
        var held = _tensors.Count == 0 ? "it holds no tensors" : $"it holds {string.Join(", ", _tensors.Keys.Take(8))}{(_tensors.Count > 8 ? $" and {_tensors.Count - 8} more" : "")}";
        throw new OnnxFormatException(SourcePath, $"calibration tensor '{name}' is missing ({held})");
    }

    /// <summary>The tensor of that name, checked against the shape the caller needs.</summary>
    /// <param name="name">The tensor name.</param>
    /// <param name="expectedShape">The dimensions; -1 accepts any size on that axis.</param>
    /// <exception cref="OnnxFormatException">There is no such tensor, or its shape differs; the message names the file, the tensor and both shapes.</exception>
    public CalibrationTensor GetTensor(string name, params ReadOnlySpan<int> expectedShape)
    {
        var tensor = GetTensor(name);
        var matches = tensor.Shape.Count == expectedShape.Length;
        for (var i = 0; matches && i < expectedShape.Length; i++)
        {
            matches = expectedShape[i] == -1 || expectedShape[i] == tensor.Shape[i];
        }
        if (!matches)
        {
            var expected = Check.Shape(expectedShape.ToArray().Select(d => d == -1 ? "?" : d.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            throw new OnnxFormatException(SourcePath, $"calibration tensor '{name}' has shape {tensor}, expected {expected}");
        }
        return tensor;
    }

    /// <summary>The metadata value of <paramref name="key"/>, or null.</summary>
    /// <param name="key">The key.</param>
    public string? GetMetadata(string key) => _metadata.GetValueOrDefault(key);

    /// <summary>Writes the data to <paramref name="path"/> as one ONNX file, atomically: a failed save leaves an existing file as it was.</summary>
    /// <param name="path">The file to create or replace.</param>
    /// <exception cref="OnnxFormatException">The tensors exceed protobuf's 2 GiB limit.</exception>
    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var initializers = _tensors.Select(entry =>
            OnnxTensor.Create(entry.Key, entry.Value.Values.Span, [.. entry.Value.Shape.Select(d => (long)d)]));
        var model = OnnxBuilder.Model(OnnxBuilder.Graph(GraphName, [], [], [], initializers), [OnnxBuilder.Opset("", 21)]);
        model.DocString = "OrtSparse calibration data: the initializers feed the method_data_* inputs of com.ortsparse.SparseAttention.";
        model.MetadataProps.Add(new StringStringEntryProto { Key = FormatKey, Value = FormatVersion });
        model.MetadataProps.Add(_metadata.Select(entry => new StringStringEntryProto { Key = entry.Key, Value = entry.Value }));
        new OnnxModel(model).Save(path);
    }

    /// <summary>Reads a file written by <see cref="Save"/>.</summary>
    /// <param name="path">The file.</param>
    /// <exception cref="OnnxFormatException">
    /// The file is missing, is not an ONNX model, is not calibration data or has an unsupported format
    /// version, or holds a tensor that is not FLOAT or a name twice; the message names the file.
    /// </exception>
    public static CalibrationData Load(string path)
    {
        var model = OnnxModel.Load(path);
        var fullPath = model.SourcePath!;
        var proto = model.Proto;
        var format = proto.MetadataProps.FirstOrDefault(e => e.Key == FormatKey)?.Value;
        if (format is null)
        {
            throw new OnnxFormatException(fullPath, $"not OrtSparse calibration data: metadata_props has no '{FormatKey}' entry");
        }
        if (format != FormatVersion)
        {
            throw new OnnxFormatException(fullPath, $"calibration format version '{format}' is not supported (this build reads '{FormatVersion}')");
        }

        var data = new CalibrationData(fullPath);
        foreach (var entry in proto.MetadataProps.Where(e => e.Key != FormatKey))
        {
            data._metadata[entry.Key] = entry.Value;
        }
        foreach (var initializer in proto.Graph.Initializer)
        {
            if (data._tensors.ContainsKey(initializer.Name))
            {
                throw new OnnxFormatException(fullPath, $"calibration tensor '{initializer.Name}' appears twice");
            }
            data._tensors[initializer.Name] = ReadTensor(initializer, model.BaseDirectory, fullPath);
        }
        return data;
    }

    private static CalibrationTensor ReadTensor(TensorProto initializer, string? baseDirectory, string path)
    {
        if (initializer.DataType != (int)DataType.Float)
        {
            throw new OnnxFormatException(path, $"calibration tensor '{initializer.Name}' holds {(DataType)initializer.DataType} elements; calibration tensors are FLOAT");
        }
        if (initializer.Dims.Any(d => d < 0 || d > int.MaxValue))
        {
            throw new OnnxFormatException(path, $"calibration tensor '{initializer.Name}' has shape [{string.Join(",", initializer.Dims)}], which does not fit an array");
        }
        try
        {
            return new CalibrationTensor(OnnxTensor.ToFloats(initializer, baseDirectory), [.. initializer.Dims.Select(d => (int)d)]);
        }
        catch (OnnxFormatException error)
        {
            throw new OnnxFormatException(path, $"calibration tensor '{initializer.Name}': {error.Problem}", error);
        }
    }
}
