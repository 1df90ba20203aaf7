using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace OrtSparse.Cli.Bench;

/// <summary>
/// The tensors of one decode step, shared by every method and by ONNX Runtime's GroupQueryAttention:
/// the step's inputs, the KV cache, seqlens_k and the output in the device's memory;
/// total_sequence_length on the host (both ops read it there); and host buffers that the untimed
/// reporting step writes its output and key selection into.
/// </summary>
internal sealed class StepTensors : IDisposable
{
    private readonly List<BenchTensor> _all = [];

    private StepTensors()
    {
    }

    /// <summary>[B, 1, Hq·D] on the device.</summary>
    public required BenchTensor Query { get; init; }

    /// <summary>[B, 1, Hkv·D] on the device.</summary>
    public required BenchTensor Key { get; init; }

    /// <summary>[B, 1, Hkv·D] on the device.</summary>
    public required BenchTensor Value { get; init; }

    /// <summary>[B, Hkv, T, D] on the device: past and present of every step.</summary>
    public required BenchTensor KeyCache { get; init; }

    /// <summary>[B, Hkv, T, D] on the device.</summary>
    public required BenchTensor ValueCache { get; init; }

    /// <summary>[B] int32 on the device, T − 1 each.</summary>
    public required BenchTensor SeqlensK { get; init; }

    /// <summary>Scalar int32 T on the host.</summary>
    public required BenchTensor TotalLength { get; init; }

    /// <summary>[B, 1, Hq·D] on the device: the timed steps' output.</summary>
    public required BenchTensor Output { get; init; }

    /// <summary>[B, 1, Hq·D] on the host: the reporting step's output.</summary>
    public required BenchTensor HostOutput { get; init; }

    /// <summary>[B, Hkv, 1, T] bool on the host: the reporting step's selected_keys.</summary>
    public required BenchTensor Selected { get; init; }

    /// <summary>Converts <paramref name="cache"/> to the settings' element type and puts it in <paramref name="device"/>'s memory.</summary>
    public static StepTensors Create(BenchDevice device, AttentionBenchSettings s, BenchCache cache)
    {
        var type = AttentionBenchmark.TensorType(s.ElementType);
        var created = new List<BenchTensor>();
        // Each tensor moves to the device as soon as it is filled, so that at most one cache is staged on the host.
        BenchTensor New(TensorElementType elementType, long[] shape, bool onDevice, Action<BenchTensor>? fill = null)
        {
            var tensor = onDevice ? BenchTensor.OnDevice(device, elementType, shape, fill) : BenchTensor.OnHost(elementType, shape);
            created.Add(tensor);
            if (!onDevice)
            {
                fill?.Invoke(tensor);
            }
            return tensor;
        }
        BenchTensor Floats(float[] data, long[] shape) => New(type, shape, onDevice: true, t => t.Write(0, data));
        BenchTensor Cache(float[][] rows) => New(type, [s.Batch, s.KvHeads, s.Context, s.HeadDim], onDevice: true,
            t => Parallel.For(0, rows.Length, bg => t.Write((long)bg * rows[bg].Length, rows[bg])));
        try
        {
            var tensors = new StepTensors
            {
                Query = Floats(cache.Query, [s.Batch, 1, s.Heads * s.HeadDim]),
                Key = Floats(cache.NewKey, [s.Batch, 1, s.KvHeads * s.HeadDim]),
                Value = Floats(cache.NewValue, [s.Batch, 1, s.KvHeads * s.HeadDim]),
                KeyCache = Cache(cache.Keys),
                ValueCache = Cache(cache.Values),
                SeqlensK = New(TensorElementType.Int32, [s.Batch], onDevice: true, t => t.Write(0, Enumerable.Repeat(s.Context - 1, s.Batch).ToArray())),
                TotalLength = New(TensorElementType.Int32, [], onDevice: false, t => t.Write(0, [s.Context])),
                Output = New(type, [s.Batch, 1, s.Heads * s.HeadDim], onDevice: true),
                HostOutput = New(type, [s.Batch, 1, s.Heads * s.HeadDim], onDevice: false),
                Selected = New(TensorElementType.Bool, [s.Batch, s.KvHeads, 1, s.Context], onDevice: false),
            };
            tensors._all.AddRange(created);
            return tensors;
        }
        catch
        {
            created.ForEach(t => t.Dispose());
            throw;
        }
    }

    /// <summary>Binds the step's inputs, the cache as past and present, and the device output (or, for the reporting step, the host output).</summary>
    public void Bind(OrtIoBinding binding, bool reporting) =>
        DecodeStep.Bind(binding, Query.Value, Key.Value, Value.Value, KeyCache.Value, ValueCache.Value, SeqlensK.Value, TotalLength.Value,
            (reporting ? HostOutput : Output).Value);

    public void Dispose() => _all.ForEach(t => t.Dispose());
}
