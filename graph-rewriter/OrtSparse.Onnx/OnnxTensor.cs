using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace OrtSparse.Onnx;

/// <summary>
/// Creates TensorProtos from arrays and reads them back, whichever way the data is stored
/// (raw_data, the typed fields, or an external data file). Also reads and writes the serialized
/// TensorProto files of ONNX test data (test_data_set_N/input_K.pb). Raw data is little-endian,
/// the byte order of every platform .NET runs on.
/// </summary>
public static class OnnxTensor
{
    /// <summary>A FLOAT tensor holding <paramref name="values"/> in raw_data.</summary>
    /// <param name="name">The tensor name.</param>
    /// <param name="values">The elements, row-major.</param>
    /// <param name="dims">The shape; empty for a scalar. Its product must equal the number of values.</param>
    public static TensorProto Create(string name, ReadOnlySpan<float> values, params ReadOnlySpan<long> dims) =>
        Create(name, DataType.Float, MemoryMarshal.AsBytes(values), values.Length, dims);

    /// <summary>A FLOAT16 tensor holding <paramref name="values"/> in raw_data.</summary>
    /// <inheritdoc cref="Create(string, ReadOnlySpan{float}, ReadOnlySpan{long})"/>
    public static TensorProto Create(string name, ReadOnlySpan<Half> values, params ReadOnlySpan<long> dims) =>
        Create(name, DataType.Float16, MemoryMarshal.AsBytes(values), values.Length, dims);

    /// <summary>An INT32 tensor holding <paramref name="values"/> in raw_data.</summary>
    /// <inheritdoc cref="Create(string, ReadOnlySpan{float}, ReadOnlySpan{long})"/>
    public static TensorProto Create(string name, ReadOnlySpan<int> values, params ReadOnlySpan<long> dims) =>
        Create(name, DataType.Int32, MemoryMarshal.AsBytes(values), values.Length, dims);

    /// <summary>An INT64 tensor holding <paramref name="values"/> in raw_data.</summary>
    /// <inheritdoc cref="Create(string, ReadOnlySpan{float}, ReadOnlySpan{long})"/>
    public static TensorProto Create(string name, ReadOnlySpan<long> values, params ReadOnlySpan<long> dims) =>
        Create(name, DataType.Int64, MemoryMarshal.AsBytes(values), values.Length, dims);

    /// <summary>A BOOL tensor holding <paramref name="values"/> in raw_data (one byte each, 0 or 1).</summary>
    /// <inheritdoc cref="Create(string, ReadOnlySpan{float}, ReadOnlySpan{long})"/>
    public static TensorProto Create(string name, ReadOnlySpan<bool> values, params ReadOnlySpan<long> dims)
    {
        var bytes = new byte[values.Length];
        for (var i = 0; i < values.Length; i++)
        {
            bytes[i] = values[i] ? (byte)1 : (byte)0;
        }
        return Create(name, DataType.Bool, bytes, values.Length, dims);
    }

    /// <summary>The number of elements: the product of the dims (1 for a scalar).</summary>
    /// <param name="tensor">The tensor.</param>
    public static long ElementCount(TensorProto tensor) => TensorLayout.ElementCount(tensor);

    /// <summary>
    /// The tensor's data as raw_data would hold it (little-endian, sub-byte types packed), read from
    /// raw_data, the typed fields, or the external data file. The size is checked against the type and dims.
    /// </summary>
    /// <param name="tensor">A tensor of any type but STRING.</param>
    /// <param name="externalDataDirectory">
    /// The folder external data locations are relative to (<see cref="OnnxModel.BaseDirectory"/>);
    /// needed only for tensors with data_location = EXTERNAL.
    /// </param>
    public static byte[] ReadBytes(TensorProto tensor, string? externalDataDirectory = null)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.Segment is not null)
        {
            throw new OnnxFormatException(null, $"tensor '{tensor.Name}' is one segment of a split tensor, which is not supported");
        }
        var byteCount = TensorLayout.ByteCount(tensor)
            ?? throw new ArgumentException($"tensor '{tensor.Name}': {(DataType)tensor.DataType} elements have no raw byte form", nameof(tensor));
        if (ExternalDataReference.IsExternal(tensor))
        {
            return ExternalDataReference.Parse(tensor, externalDataDirectory).Read(byteCount);
        }
        if (tensor.RawData.IsEmpty)
        {
            return TensorLayout.TypedFieldsToBytes(tensor, byteCount);
        }
        if (tensor.RawData.Length != byteCount)
        {
            throw new OnnxFormatException(null,
                $"tensor '{tensor.Name}': raw_data has {tensor.RawData.Length} bytes, expected {byteCount} for a {(DataType)tensor.DataType} tensor of shape [{string.Join(",", tensor.Dims)}]");
        }
        return tensor.RawData.ToByteArray();
    }

    /// <summary>The elements of a FLOAT tensor; FLOAT16 and BFLOAT16 tensors are widened to float exactly.</summary>
    /// <param name="tensor">The tensor.</param>
    /// <param name="externalDataDirectory">See <see cref="ReadBytes"/>.</param>
    public static float[] ToFloats(TensorProto tensor, string? externalDataDirectory = null) => ElementType(tensor) switch
    {
        DataType.Float => ReadAs<float>(tensor, externalDataDirectory),
        DataType.Float16 => Array.ConvertAll(ReadAs<Half>(tensor, externalDataDirectory), h => (float)h),
        // bfloat16 is the upper half of a float32's bits.
        DataType.Bfloat16 => Array.ConvertAll(ReadAs<ushort>(tensor, externalDataDirectory), b => BitConverter.Int32BitsToSingle(b << 16)),
        _ => throw WrongType(tensor, "float", DataType.Float, DataType.Float16, DataType.Bfloat16),
    };

    /// <summary>The elements of a FLOAT16 tensor.</summary>
    /// <inheritdoc cref="ToFloats"/>
    public static Half[] ToHalfs(TensorProto tensor, string? externalDataDirectory = null) =>
        ElementType(tensor) == DataType.Float16 ? ReadAs<Half>(tensor, externalDataDirectory) : throw WrongType(tensor, "Half", DataType.Float16);

    /// <summary>The elements of an INT32 tensor.</summary>
    /// <inheritdoc cref="ToFloats"/>
    public static int[] ToInt32s(TensorProto tensor, string? externalDataDirectory = null) =>
        ElementType(tensor) == DataType.Int32 ? ReadAs<int>(tensor, externalDataDirectory) : throw WrongType(tensor, "int", DataType.Int32);

    /// <summary>The elements of an INT64 tensor.</summary>
    /// <inheritdoc cref="ToFloats"/>
    public static long[] ToInt64s(TensorProto tensor, string? externalDataDirectory = null) =>
        ElementType(tensor) == DataType.Int64 ? ReadAs<long>(tensor, externalDataDirectory) : throw WrongType(tensor, "long", DataType.Int64);

    /// <summary>The elements of a BOOL tensor (any non-zero byte is true).</summary>
    /// <inheritdoc cref="ToFloats"/>
    public static bool[] ToBools(TensorProto tensor, string? externalDataDirectory = null) =>
        ElementType(tensor) == DataType.Bool
            ? Array.ConvertAll(ReadBytes(tensor, externalDataDirectory), b => b != 0)
            : throw WrongType(tensor, "bool", DataType.Bool);

    /// <summary>Reads a file holding one serialized TensorProto, such as test_data_set_0/input_0.pb.</summary>
    /// <param name="path">The file.</param>
    /// <exception cref="OnnxFormatException">The file is missing or does not hold a TensorProto.</exception>
    public static TensorProto Load(string path)
    {
        const string kind = "a serialized TensorProto";
        var tensor = ProtobufFile.Read(path, TensorProto.Parser, kind);
        if (tensor.DataType == (int)DataType.Undefined || !Enum.IsDefined((DataType)tensor.DataType))
        {
            throw new OnnxFormatException(path, $"not {kind}: element type {tensor.DataType} is not an ONNX type");
        }
        return tensor;
    }

    /// <summary>Writes one serialized TensorProto to <paramref name="path"/>, atomically.</summary>
    /// <param name="tensor">The tensor; its data must be inline.</param>
    /// <param name="path">The file to create or replace.</param>
    public static void Save(TensorProto tensor, string path)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (ExternalDataReference.IsExternal(tensor))
        {
            throw new ArgumentException($"tensor '{tensor.Name}' keeps its data in an external file; a tensor file must hold its data inline", nameof(tensor));
        }
        using var file = new PendingFile(Path.GetFullPath(path));
        tensor.WriteTo(file.Stream);
        file.Commit();
    }

    private static TensorProto Create(string name, DataType type, ReadOnlySpan<byte> bytes, int count, ReadOnlySpan<long> dims)
    {
        foreach (var dim in dims)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(dim, nameof(dims));
        }
        var tensor = new TensorProto { Name = name, DataType = (int)type };
        tensor.Dims.AddRange(dims.ToArray());
        var expected = TensorLayout.ElementCount(tensor);
        if (expected != count)
        {
            throw new ArgumentException($"tensor '{name}': shape [{string.Join(",", tensor.Dims)}] holds {expected} elements, but {count} values were given", nameof(dims));
        }
        tensor.RawData = ByteString.CopyFrom(bytes);
        return tensor;
    }

    private static DataType ElementType(TensorProto tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        return (DataType)tensor.DataType;
    }

    private static T[] ReadAs<T>(TensorProto tensor, string? externalDataDirectory) where T : unmanaged =>
        MemoryMarshal.Cast<byte, T>(ReadBytes(tensor, externalDataDirectory)).ToArray();

    private static ArgumentException WrongType(TensorProto tensor, string wanted, params DataType[] accepted) =>
        new($"tensor '{tensor.Name}' holds {(DataType)tensor.DataType} elements; reading them as {wanted} needs {string.Join(" or ", accepted)}", nameof(tensor));
}
