using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Onnx;
using OrtSparse.Onnx;

namespace OrtSparse.Runtime.Generation;

/// <summary>
/// Copies a rank-4 tensor into a longer one along axis 2 (a cache growing to a new capacity) on the
/// device both live on, with ONNX Runtime's own Pad kernel: the copy never passes through the host.
/// </summary>
internal sealed class TensorResizer : IDisposable
{
    private readonly SessionConfig _config;
    private readonly Dictionary<TensorElementType, InferenceSession> _sessions = [];
    private readonly object _lock = new();

    public TensorResizer(SessionConfig config) => _config = config;

    /// <summary>Writes <paramref name="source"/> into the first rows (axis 2) of <paramref name="target"/>; the rows after it become zeros.</summary>
    public void CopyInto(DeviceTensor source, DeviceTensor target)
    {
        var (s, t) = (source.Shape, target.Shape);
        if (s.Length != 4 || t.Length != 4 || s[0] != t[0] || s[1] != t[1] || s[3] != t[3] || s[2] > t[2] || source.ElementType != target.ElementType)
        {
            throw new ArgumentException($"Cannot grow a {source.ElementType} [{string.Join(", ", s)}] tensor into a {target.ElementType} [{string.Join(", ", t)}] one.");
        }
        long[] pads = [0, 0, 0, 0, 0, 0, t[2] - s[2], 0];
        using var padsValue = OrtValue.CreateTensorValueFromMemory(pads, [8]);
        using var binding = SessionFor(source.ElementType).CreateIoBinding();
        using var runOptions = new RunOptions();
        binding.BindInput("x", source.Value);
        binding.BindInput("pads", padsValue);
        binding.BindOutput("y", target.Value);
        SessionFor(source.ElementType).RunWithBinding(runOptions, binding);
    }

    private InferenceSession SessionFor(TensorElementType type)
    {
        lock (_lock)
        {
            if (!_sessions.TryGetValue(type, out var session))
            {
                var dataType = type switch
                {
                    TensorElementType.Float => TensorProto.Types.DataType.Float,
                    TensorElementType.Float16 => TensorProto.Types.DataType.Float16,
                    TensorElementType.Int32 => TensorProto.Types.DataType.Int32,
                    TensorElementType.Int64 => TensorProto.Types.DataType.Int64,
                    _ => throw new NotSupportedException($"Cannot grow {type} tensors."),
                };
                Dim[] dims = ["a", "b", "rows", "d"];
                var graph = OnnxBuilder.Graph("grow",
                    [OnnxBuilder.Node("Pad", ["x", "pads"], ["y"], [OnnxBuilder.StringAttribute("mode", "constant")], "pad")],
                    [OnnxBuilder.TensorValueInfo("x", dataType, dims), OnnxBuilder.TensorValueInfo("pads", TensorProto.Types.DataType.Int64, [8])],
                    [OnnxBuilder.TensorValueInfo("y", dataType, ["a", "b", "grown_rows", "d"])], []);
                var model = OnnxBuilder.Model(graph, [OnnxBuilder.Opset("", 18)]);
                using var options = SessionFactory.CreateOptions(_config with { IntraOpThreads = 1 });
                session = SessionFactory.CreateSession(Google.Protobuf.MessageExtensions.ToByteArray(model), options);
                _sessions[type] = session;
            }
            return session;
        }
    }

    public void Dispose()
    {
        foreach (var session in _sessions.Values)
        {
            session.Dispose();
        }
    }
}
