using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace OrtSparse.Runtime.Generation;

/// <summary>
/// A tensor in the memory of the device the model runs on (host memory for the CPU), allocated by
/// that device's ONNX Runtime allocator and bound to sessions without copies.
/// </summary>
internal sealed class DeviceTensor : IDisposable
{
    private DeviceTensor(OrtValue value, OrtMemoryInfo memory, TensorElementType type, long[] shape)
    {
        Value = value;
        Memory = memory;
        ElementType = type;
        Shape = shape;
    }

    /// <summary>The whole tensor.</summary>
    public OrtValue Value { get; }

    /// <summary>Where it lives.</summary>
    public OrtMemoryInfo Memory { get; }

    /// <summary>The element type.</summary>
    public TensorElementType ElementType { get; }

    /// <summary>The shape.</summary>
    public long[] Shape { get; }

    /// <summary>Number of elements.</summary>
    public long Count => Shape.Aggregate(1L, (a, d) => a * d);

    /// <summary>Allocates an uninitialised tensor with <paramref name="allocator"/>.</summary>
    public static DeviceTensor Allocate(OrtAllocator allocator, TensorElementType type, long[] shape)
    {
        var bytes = shape.Aggregate(1L, (a, d) => a * d) * ElementSize(type);
        try
        {
            return new DeviceTensor(OrtValue.CreateAllocatedTensorValue(allocator, type, shape), allocator.Info, type, shape);
        }
        catch (OnnxRuntimeException e)
        {
            throw new InsufficientMemoryException(
                $"Could not allocate a {type} tensor of shape [{string.Join(", ", shape)}] ({bytes / 1048576.0:F1} MiB) on {allocator.Info.Name}: {e.Message}", e);
        }
    }

    /// <summary>
    /// A tensor of shape <paramref name="shape"/> over this one's memory from element
    /// <paramref name="offset"/> on; it shares the memory (dispose it before this tensor).
    /// </summary>
    public OrtValue View(long[] shape, long offset = 0)
    {
        var count = shape.Aggregate(1L, (a, d) => a * d);
        if (offset < 0 || offset + count > Count)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"A view of {count} elements from {offset} does not fit a tensor of {Count}.");
        }
        var size = ElementSize(ElementType);
        return OrtValue.CreateTensorValueWithData(Memory, ElementType, shape, BasePointer() + (nint)(offset * size), count * size);
    }

    public void Dispose() => Value.Dispose();

    /// <summary>
    /// Copies each of <paramref name="sources"/> into the tensor of the same size in <paramref name="targets"/>,
    /// between host and device memory through the device's data transfer; host-to-host directly (ONNX
    /// Runtime's CopyTensors only knows providers' transfers).
    /// </summary>
    public static void Copy(IReadOnlyList<OrtValue> sources, IReadOnlyList<OrtValue> targets, ExecutionDevice device)
    {
        if (device == ExecutionDevice.Cpu)
        {
            for (var i = 0; i < sources.Count; i++)
            {
                sources[i].GetTensorMutableRawData().CopyTo(targets[i].GetTensorMutableRawData());
            }
            return;
        }
        OrtEnv.Instance().CopyTensors(sources, targets, null);
    }

    /// <summary>Bytes per element of the types a generator binds.</summary>
    public static int ElementSize(TensorElementType type) => type switch
    {
        TensorElementType.Float or TensorElementType.Int32 => 4,
        TensorElementType.Float16 or TensorElementType.BFloat16 => 2,
        TensorElementType.Int64 => 8,
        _ => throw new NotSupportedException($"Tensors of {type} are not bound by the generator."),
    };

    // ONNX Runtime's C# API hands out a tensor's address only as a span (which may point at device
    // memory and is never dereferenced here); a span's length is an int, hence the limit.
    private unsafe nint BasePointer()
    {
        var bytes = Count * ElementSize(ElementType);
        if (bytes > int.MaxValue)
        {
            throw new NotSupportedException($"Views into tensors over 2 GiB ({bytes} bytes) are not supported.");
        }
        return (nint)Unsafe.AsPointer(ref MemoryMarshal.GetReference(Value.GetTensorMutableRawData()));
    }
}
