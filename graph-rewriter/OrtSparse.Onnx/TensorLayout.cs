using System.Runtime.InteropServices;
using Google.Protobuf.Collections;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace OrtSparse.Onnx;

/// <summary>Element sizes, element counts and the byte form of a tensor's typed fields.</summary>
internal static class TensorLayout
{
    /// <summary>Bits per element in raw_data, or null for types without a fixed-size form (STRING, unknown).</summary>
    public static int? BitsPerElement(DataType type) => type switch
    {
        DataType.Uint2 or DataType.Int2 => 2,
        DataType.Uint4 or DataType.Int4 or DataType.Float4E2M1 => 4,
        DataType.Uint8 or DataType.Int8 or DataType.Bool or DataType.Float8E4M3Fn or DataType.Float8E4M3Fnuz
            or DataType.Float8E5M2 or DataType.Float8E5M2Fnuz or DataType.Float8E8M0 => 8,
        DataType.Uint16 or DataType.Int16 or DataType.Float16 or DataType.Bfloat16 => 16,
        DataType.Float or DataType.Int32 or DataType.Uint32 => 32,
        DataType.Double or DataType.Int64 or DataType.Uint64 or DataType.Complex64 => 64,
        DataType.Complex128 => 128,
        _ => null,
    };

    /// <summary>The product of the dims (1 for a scalar).</summary>
    public static long ElementCount(TensorProto tensor)
    {
        long count = 1;
        foreach (var dim in tensor.Dims)
        {
            if (dim < 0)
            {
                throw new OnnxFormatException(null, $"tensor '{tensor.Name}' has a negative dimension {dim}");
            }
            count = checked(count * dim);
        }
        return count;
    }

    /// <summary>The size of the tensor's data in raw form (sub-byte types rounded up), or null for STRING and unknown types.</summary>
    public static long? ByteCount(TensorProto tensor) =>
        BitsPerElement((DataType)tensor.DataType) is { } bits ? checked(ElementCount(tensor) * bits + 7) / 8 : null;

    /// <summary>The bytes raw_data would hold for a tensor whose elements are in the typed fields.</summary>
    public static byte[] TypedFieldsToBytes(TensorProto tensor, long byteCount)
    {
        var type = (DataType)tensor.DataType;
        var elements = ElementCount(tensor);
        return type switch
        {
            DataType.Float => Pack(tensor, tensor.FloatData, "float_data", elements, v => v),
            DataType.Complex64 => Pack(tensor, tensor.FloatData, "float_data", elements * 2, v => v),
            DataType.Double => Pack(tensor, tensor.DoubleData, "double_data", elements, v => v),
            DataType.Complex128 => Pack(tensor, tensor.DoubleData, "double_data", elements * 2, v => v),
            DataType.Int64 => Pack(tensor, tensor.Int64Data, "int64_data", elements, v => v),
            DataType.Uint64 => Pack(tensor, tensor.Uint64Data, "uint64_data", elements, v => v),
            DataType.Uint32 => Pack(tensor, tensor.Uint64Data, "uint64_data", elements, v => (uint)v),
            DataType.Int32 => Pack(tensor, tensor.Int32Data, "int32_data", elements, v => v),
            // 16-bit and 8-bit types keep one element (its bit pattern) per int32 entry.
            _ when BitsPerElement(type) == 16 => Pack(tensor, tensor.Int32Data, "int32_data", elements, v => (ushort)v),
            _ when BitsPerElement(type) == 8 => Pack(tensor, tensor.Int32Data, "int32_data", elements, v => (byte)v),
            // Sub-byte types keep one packed byte per int32 entry.
            _ when BitsPerElement(type) < 8 => Pack(tensor, tensor.Int32Data, "int32_data", byteCount, v => (byte)v),
            _ => throw new OnnxFormatException(null, $"tensor '{tensor.Name}': element type {type} has no raw byte form"),
        };
    }

    /// <summary>Removes the tensor's inline data (raw and typed).</summary>
    public static void ClearInlineData(TensorProto tensor)
    {
        tensor.RawData = Google.Protobuf.ByteString.Empty;
        tensor.FloatData.Clear();
        tensor.Int32Data.Clear();
        tensor.Int64Data.Clear();
        tensor.DoubleData.Clear();
        tensor.Uint64Data.Clear();
    }

    /// <summary>Bytes of inline data the tensor adds to the serialized model.</summary>
    public static long InlineSize(TensorProto tensor) =>
        tensor.RawData.Length + 4L * tensor.FloatData.Count + 4L * tensor.Int32Data.Count + 8L * tensor.Int64Data.Count
        + 8L * tensor.DoubleData.Count + 8L * tensor.Uint64Data.Count + tensor.StringData.Sum(s => (long)s.Length);

    private static byte[] Pack<TField, TElement>(TensorProto tensor, RepeatedField<TField> field, string fieldName, long expected, Func<TField, TElement> convert)
        where TElement : unmanaged
    {
        if (field.Count != expected)
        {
            throw new OnnxFormatException(null,
                $"tensor '{tensor.Name}': {fieldName} has {field.Count} values, expected {expected} for a {(DataType)tensor.DataType} tensor of shape [{string.Join(",", tensor.Dims)}]");
        }
        var elements = new TElement[field.Count];
        for (var i = 0; i < elements.Length; i++)
        {
            elements[i] = convert(field[i]);
        }
        return MemoryMarshal.AsBytes(elements.AsSpan()).ToArray();
    }
}
