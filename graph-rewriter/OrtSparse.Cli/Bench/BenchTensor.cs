using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace OrtSparse.Cli.Bench;

/// <summary>
/// A tensor of the bench. It starts in native host memory, where it is filled piece by piece (a KV
/// cache of B·Hkv·T·D elements may exceed what one managed array or span holds), and
/// <see cref="MoveTo"/> puts it in the memory of the device that binds it.
/// </summary>
internal sealed unsafe class BenchTensor : IDisposable
{
    private byte* _host;

    private BenchTensor(TensorElementType type, long[] shape, byte* host, OrtValue value)
    {
        ElementType = type;
        Shape = shape;
        _host = host;
        Value = value;
    }

    /// <summary>The tensor as ONNX Runtime binds it: a view of the host memory, or a device tensor after <see cref="MoveTo"/>.</summary>
    public OrtValue Value { get; private set; }

    /// <summary>The element type.</summary>
    public TensorElementType ElementType { get; }

    /// <summary>The shape.</summary>
    public long[] Shape { get; }

    /// <summary>Number of elements.</summary>
    public long Count => Shape.Aggregate(1L, (a, d) => a * d);

    /// <summary>A zeroed tensor in host memory.</summary>
    /// <param name="type">Float, Float16, BFloat16, Int32 or Bool.</param>
    /// <param name="shape">The shape.</param>
    public static BenchTensor OnHost(TensorElementType type, long[] shape)
    {
        var bytes = (nuint)(shape.Aggregate(1L, (a, d) => a * d) * ElementSize(type));
        var host = (byte*)NativeMemory.AlignedAlloc(Math.Max(bytes, 64), 64);
        NativeMemory.Clear(host, bytes);
        try
        {
            return new BenchTensor(type, shape, host, OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, type, shape, (IntPtr)host, (long)bytes));
        }
        catch
        {
            NativeMemory.AlignedFree(host);
            throw;
        }
    }

    /// <summary>Writes <paramref name="values"/> from element <paramref name="offset"/> on, converted to the element type; thread-safe for disjoint ranges.</summary>
    public void Write(long offset, ReadOnlySpan<float> values)
    {
        switch (ElementType)
        {
            case TensorElementType.Float:
                values.CopyTo(HostSpan<float>(offset, values.Length));
                break;
            case TensorElementType.Float16:
                var halves = HostSpan<Float16>(offset, values.Length);
                for (var i = 0; i < values.Length; i++)
                {
                    halves[i] = (Float16)values[i];
                }
                break;
            case TensorElementType.BFloat16:
                var brains = HostSpan<BFloat16>(offset, values.Length);
                for (var i = 0; i < values.Length; i++)
                {
                    brains[i] = (BFloat16)values[i];
                }
                break;
            default:
                throw new InvalidOperationException($"a {ElementType} tensor does not take float values");
        }
    }

    /// <summary>Writes int32 <paramref name="values"/> from element <paramref name="offset"/> on.</summary>
    public void Write(long offset, ReadOnlySpan<int> values)
    {
        if (ElementType != TensorElementType.Int32)
        {
            throw new InvalidOperationException($"a {ElementType} tensor does not take int32 values");
        }
        values.CopyTo(HostSpan<int>(offset, values.Length));
    }

    /// <summary>Every element as a double (booleans as 0/1); host tensors of fewer than 2^31 bytes only.</summary>
    public double[] ToDoubles()
    {
        Host();
        return TensorValues.ToDoubles(Value);
    }

    /// <summary>The elements of a host bool tensor.</summary>
    public bool[] ToBools()
    {
        if (ElementType != TensorElementType.Bool)
        {
            throw new InvalidOperationException($"a {ElementType} tensor does not hold booleans");
        }
        var result = new bool[Count];
        new ReadOnlySpan<bool>(Host(), result.Length).CopyTo(result);
        return result;
    }

    /// <summary>A tensor filled on the host by <paramref name="fill"/>, then put in <paramref name="device"/>'s memory.</summary>
    /// <param name="device">Where it lives.</param>
    /// <param name="type">Float, Float16, BFloat16, Int32 or Bool.</param>
    /// <param name="shape">The shape.</param>
    /// <param name="fill">Writes the values; null leaves zeros.</param>
    public static BenchTensor OnDevice(BenchDevice device, TensorElementType type, long[] shape, Action<BenchTensor>? fill = null)
    {
        var tensor = OnHost(type, shape);
        try
        {
            fill?.Invoke(tensor);
            tensor.MoveTo(device);
            return tensor;
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Puts the tensor in <paramref name="device"/>'s memory and releases the host copy; on the CPU
    /// the host memory already is the device's, and nothing moves.
    /// </summary>
    public void MoveTo(BenchDevice device)
    {
        Host();
        if (device.Device == Runtime.ExecutionDevice.Cpu)
        {
            return;
        }
        var onDevice = device.Allocate(ElementType, Shape);
        try
        {
            device.Upload(Value, onDevice);
        }
        catch
        {
            onDevice.Dispose();
            throw;
        }
        var view = Value;
        Value = onDevice;
        view.Dispose();
        ReleaseHost();
    }

    public void Dispose()
    {
        Value.Dispose();
        ReleaseHost();
    }

    private void ReleaseHost()
    {
        if (_host != null)
        {
            NativeMemory.AlignedFree(_host);
            _host = null;
        }
    }

    private byte* Host() => _host != null ? _host : throw new InvalidOperationException("the tensor was moved to the device; its host copy is gone");

    private Span<T> HostSpan<T>(long offset, int count) where T : unmanaged
    {
        if (offset < 0 || offset + count > Count)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"elements [{offset}, {offset + count}) are outside the tensor's {Count}");
        }
        return new Span<T>(Host() + offset * sizeof(T), count);
    }

    private static long ElementSize(TensorElementType type) => type switch
    {
        TensorElementType.Float or TensorElementType.Int32 => 4,
        TensorElementType.Float16 or TensorElementType.BFloat16 => 2,
        TensorElementType.Bool => 1,
        _ => throw new NotSupportedException($"bench tensors of {type} are not supported"),
    };
}
