using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using OrtSparse.Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace OrtSparse.Runtime.Text;

/// <summary>
/// ONNX Runtime Extensions' <c>HfJsonTokenizer</c> op (domain ai.onnx.contrib) in a one-node model,
/// opened once: a string tensor [batch] in, token ids [batch, longest] and an attention mask of the
/// same shape (1 for a token, 0 for padding) out. <see cref="InferenceSession.Run(RunOptions, IReadOnlyCollection{string}, IReadOnlyCollection{OrtValue}, IReadOnlyCollection{string})"/>
/// is thread-safe, so one instance serves every thread.
/// </summary>
internal sealed class ExtensionsTokenizerOp : ITokenEncoder
{
    private const string Domain = "ai.onnx.contrib";
    private const string TextName = "text";
    private const string IdsName = "input_ids";
    private const string MaskName = "attention_mask";
    private static readonly string[] InputNames = [TextName];
    private static readonly string[] OutputNames = [IdsName, MaskName];

    private readonly InferenceSession _session;

    private ExtensionsTokenizerOp(InferenceSession session) => _session = session;

    /// <summary>Opens the op on a tokenizer.json and tokenizer_config.json, given as text.</summary>
    /// <param name="tokenizerJson">The content of tokenizer.json (the op's <c>tokenizer_vocab</c>).</param>
    /// <param name="configJson">The content of tokenizer_config.json (the op's <c>tokenizer_config</c>).</param>
    /// <param name="extensionsLibraryPath">The Extensions library; null: <see cref="NativeLibraries.ResolveExtensions"/> finds it.</param>
    public static ExtensionsTokenizerOp Open(string tokenizerJson, string configJson, string? extensionsLibraryPath = null)
    {
        var node = OnnxBuilder.Node("HfJsonTokenizer", [TextName], OutputNames,
            [OnnxBuilder.StringAttribute("tokenizer_vocab", tokenizerJson), OnnxBuilder.StringAttribute("tokenizer_config", configJson)],
            name: "tokenizer", domain: Domain);
        var graph = OnnxBuilder.Graph("tokenizer", [node],
            [OnnxBuilder.TensorValueInfo(TextName, DataType.String, ["batch"])],
            [OnnxBuilder.TensorValueInfo(IdsName, DataType.Int64, ["batch", "tokens"]),
             OnnxBuilder.TensorValueInfo(MaskName, DataType.Int64, ["batch", "tokens"])]);
        var model = OnnxBuilder.Model(graph, [OnnxBuilder.Opset("", 17), OnnxBuilder.Opset(Domain, 1)]);

        using var options = new SessionOptions();
        options.IntraOpNumThreads = 1; // one node that runs on one thread: no thread pool
        options.RegisterCustomOpLibrary(NativeLibraries.ResolveExtensions(extensionsLibraryPath));
        try
        {
            return new ExtensionsTokenizerOp(SessionFactory.CreateSession(model.ToByteArray(), options));
        }
        catch (OnnxRuntimeException e)
        {
            throw new InvalidDataException($"ONNX Runtime Extensions' HfJsonTokenizer did not load the tokenizer: {e.Message}", e);
        }
    }

    /// <summary>Encodes every text of <paramref name="texts"/> (none empty) in one run.</summary>
    /// <param name="texts">The texts.</param>
    public int[][] Encode(IReadOnlyList<string> texts)
    {
        using var input = OrtValue.CreateTensorWithEmptyStrings(OrtAllocator.DefaultInstance, [texts.Count]);
        for (var i = 0; i < texts.Count; i++)
        {
            input.StringTensorSetElementAt(texts[i].AsSpan(), i);
        }
        using var runOptions = new RunOptions();
        using var outputs = _session.Run(runOptions, InputNames, [input], OutputNames);
        var ids = outputs[0].GetTensorDataAsSpan<long>();
        var mask = outputs[1].GetTensorDataAsSpan<long>();
        var width = texts.Count == 0 ? 0 : ids.Length / texts.Count;
        var result = new int[texts.Count][];
        for (var i = 0; i < texts.Count; i++)
        {
            var rowMask = mask.Slice(i * width, width);
            var length = rowMask.IndexOf(0L) is var firstPad and >= 0 ? firstPad : width;
            result[i] = new int[length];
            for (var j = 0; j < length; j++)
            {
                result[i][j] = checked((int)ids[i * width + j]);
            }
        }
        return result;
    }

    /// <inheritdoc/>
    public void Dispose() => _session.Dispose();
}
