using System.Runtime.InteropServices;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Onnx;
using OrtSparse.Onnx;

namespace OrtSparse.Cli;

/// <summary>Moves tensors between ONNX TensorProto (test-data files) and ONNX Runtime OrtValues, for every fixed-size element type.</summary>
public static class TensorValues
{
    private static readonly Dictionary<TensorProto.Types.DataType, TensorElementType> ElementTypes = new()
    {
        [TensorProto.Types.DataType.Float] = TensorElementType.Float,
        [TensorProto.Types.DataType.Float16] = TensorElementType.Float16,
        [TensorProto.Types.DataType.Bfloat16] = TensorElementType.BFloat16,
        [TensorProto.Types.DataType.Double] = TensorElementType.Double,
        [TensorProto.Types.DataType.Int8] = TensorElementType.Int8,
        [TensorProto.Types.DataType.Uint8] = TensorElementType.UInt8,
        [TensorProto.Types.DataType.Int16] = TensorElementType.Int16,
        [TensorProto.Types.DataType.Uint16] = TensorElementType.UInt16,
        [TensorProto.Types.DataType.Int32] = TensorElementType.Int32,
        [TensorProto.Types.DataType.Uint32] = TensorElementType.UInt32,
        [TensorProto.Types.DataType.Int64] = TensorElementType.Int64,
        [TensorProto.Types.DataType.Uint64] = TensorElementType.UInt64,
        [TensorProto.Types.DataType.Bool] = TensorElementType.Bool,
    };

    /// <summary>Creates an OrtValue holding a copy of <paramref name="tensor"/>.</summary>
    /// <param name="tensor">The tensor to copy.</param>
    public static OrtValue ToOrtValue(TensorProto tensor)
    {
        var bytes = OnnxTensor.ReadBytes(tensor);
        var type = (TensorProto.Types.DataType)tensor.DataType;
        var value = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, ElementTypes[type], tensor.Dims.ToArray());
        bytes.CopyTo(value.GetTensorMutableRawData());
        return value;
    }

    /// <summary>Copies a CPU-resident tensor OrtValue into a TensorProto named <paramref name="name"/>.</summary>
    /// <param name="value">The tensor.</param>
    /// <param name="name">The name to store.</param>
    public static TensorProto ToTensorProto(OrtValue value, string name)
    {
        var info = value.GetTensorTypeAndShape();
        var type = ElementTypes.First(p => p.Value == info.ElementDataType).Key;
        var tensor = new TensorProto { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(value.GetTensorMutableRawData()) };
        tensor.Dims.Add(info.Shape);
        return tensor;
    }

    /// <summary>The elements of a CPU-resident tensor OrtValue as doubles (booleans as 0/1), for comparisons.</summary>
    /// <param name="value">The tensor.</param>
    public static double[] ToDoubles(OrtValue value) => ToDoubles(value.GetTensorTypeAndShape().ElementDataType, value.GetTensorMutableRawData());

    /// <summary>The elements of a TensorProto as doubles (booleans as 0/1), for comparisons.</summary>
    /// <param name="tensor">The tensor.</param>
    public static double[] ToDoubles(TensorProto tensor) =>
        ToDoubles(ElementTypes.TryGetValue((TensorProto.Types.DataType)tensor.DataType, out var type)
            ? type
            : throw new NotSupportedException($"tensor '{tensor.Name}': element type {(TensorProto.Types.DataType)tensor.DataType} is not supported"), OnnxTensor.ReadBytes(tensor));

    private static double[] ToDoubles(TensorElementType type, ReadOnlySpan<byte> bytes) => type switch
    {
        TensorElementType.Float => Convert(MemoryMarshal.Cast<byte, float>(bytes), v => v),
        TensorElementType.Float16 => Convert(MemoryMarshal.Cast<byte, Float16>(bytes), v => (float)v),
        TensorElementType.BFloat16 => Convert(MemoryMarshal.Cast<byte, BFloat16>(bytes), v => (float)v),
        TensorElementType.Double => MemoryMarshal.Cast<byte, double>(bytes).ToArray(),
        TensorElementType.Int8 => Convert(MemoryMarshal.Cast<byte, sbyte>(bytes), v => v),
        TensorElementType.UInt8 or TensorElementType.Bool => Convert(bytes, v => v),
        TensorElementType.Int16 => Convert(MemoryMarshal.Cast<byte, short>(bytes), v => v),
        TensorElementType.UInt16 => Convert(MemoryMarshal.Cast<byte, ushort>(bytes), v => v),
        TensorElementType.Int32 => Convert(MemoryMarshal.Cast<byte, int>(bytes), v => v),
        TensorElementType.UInt32 => Convert(MemoryMarshal.Cast<byte, uint>(bytes), v => v),
        TensorElementType.Int64 => Convert(MemoryMarshal.Cast<byte, long>(bytes), v => v),
        TensorElementType.UInt64 => Convert(MemoryMarshal.Cast<byte, ulong>(bytes), v => v),
        _ => throw new NotSupportedException($"element type {type} is not supported"),
    };

    private static double[] Convert<T>(ReadOnlySpan<T> values, Func<T, double> convert)
    {
        var result = new double[values.Length];
        for (var i = 0; i < values.Length; i++)
        {
            result[i] = convert(values[i]);
        }
        return result;
    }
}
