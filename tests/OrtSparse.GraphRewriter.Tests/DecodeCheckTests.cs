using Google.Protobuf;
using Onnx;
using OrtSparse.Cli;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>`ortsparse check` in decode mode on the code model with a KV cache: against ONNX Runtime on the unpatched model, and its errors.</summary>
public sealed class DecodeCheckTests : IDisposable
{
    private const int Vocabulary = 4096;

    private readonly string _scratch = Directory.CreateTempSubdirectory("ortsparse-decode-check-").FullName;

    public void Dispose() => Directory.Delete(_scratch, recursive: true);

    /// <summary>
    /// The logits of the last K tokens, each fed as a decode step after the rest as a prompt, equal ONNX Runtime's on the
    /// unpatched model running all tokens at once: dense, and topk with every key in its budget (its decode selection runs).
    /// </summary>
    [Theory]
    [InlineData(1, 40, 1, "--method dense")]
    [InlineData(2, 40, 8, "--method dense")]
    [InlineData(2, 40, 8, "--method topk --budget 1 --dense-below 0")]
    public void DecodeModeMatchesOnnxRuntimeOnTheWholeSequence(int batch, int length, int steps, string patchArguments)
    {
        var golden = CodeModel.WriteDenseGolden(Path.Combine(_scratch, "golden"), CodeModel.Tokens(batch, length, seed: batch + steps), steps);
        var model = CodeModel.Patch(Path.Combine(_scratch, "model"), patchArguments.Split(' '));

        var (code, output, error) = CodeModel.Check(model, golden, 1e-4, 1e-4);

        Assert.True(code == CliApp.Ok, output + error);
        Assert.Contains($"logits (decode: last {steps} of {length})", output);
        Assert.Equal(["ok"], CodeModel.Results(output));
    }

    /// <summary>On a model without a KV cache a data set with the logits of every position still runs as given, all tokens at once.</summary>
    [Fact]
    public void AModelWithoutCacheRunsAWholeSequenceSetAsGiven()
    {
        var golden = CodeModel.WriteDenseGolden(Path.Combine(_scratch, "golden"), CodeModel.Tokens(1, 12, seed: 3), steps: 12);
        var output = Path.Combine(_scratch, "dense.onnx");
        Assert.Equal(CliApp.Ok, CliTests.Cli("patch", CodeModel.PathOf(CodeModel.ModelFile), "-o", output, "--method", "dense").Code);

        var (code, stdout, error) = CodeModel.Check(output, golden, 1e-4, 1e-4);

        Assert.True(code == CliApp.Ok, stdout + error);
        Assert.DoesNotContain("(decode:", stdout);
        Assert.Equal(["ok"], CodeModel.Results(stdout));
    }

    [Theory]
    [InlineData("K = N", "K (8) must be at least 1 and less than N (8)")]
    [InlineData("vocabulary", "the expected logits have a vocabulary of 100, the model's logits 4096")]
    [InlineData("batch", "[B, K, V] with B = 2 (input_ids' batch), got [1, 2, 4096]")]
    [InlineData("int32 ids", "decode mode needs input_ids int64 [B, N], got Int32 [1, 8]")]
    [InlineData("token outside the vocabulary", "holds token id 4096, outside the vocabulary [0, 4096)")]
    [InlineData("negative token", "input_ids[0, 3] is -5, not a token id")]
    [InlineData("model without cache", "is a decode-mode data set (logits of the last 2 of 8 tokens), which needs a model with a KV cache")]
    public void ADataSetThatFitsNeitherModeIsRefusedWithTheReason(string problem, string message)
    {
        var ids = Enumerable.Range(1, 8).Select(i => (long)i).ToArray();
        var (idBatch, steps, vocabulary) = (1, 2, Vocabulary);
        var idType = TensorProto.Types.DataType.Int64;
        switch (problem)
        {
            case "K = N": steps = 8; break;
            case "vocabulary": vocabulary = 100; break;
            case "batch": ids = [.. ids, .. ids]; idBatch = 2; break;
            case "int32 ids": idType = TensorProto.Types.DataType.Int32; break;
            case "token outside the vocabulary": ids[3] = Vocabulary; break;
            case "negative token": ids[3] = -5; break;
        }
        var idBytes = idType == TensorProto.Types.DataType.Int64 ? ids.SelectMany(BitConverter.GetBytes) : ids.SelectMany(i => BitConverter.GetBytes((int)i));
        var dataSet = CodeModel.WriteDataSet(Path.Combine(_scratch, "set"),
            Tensor("input_ids", idType, [idBatch, 8], idBytes.ToArray()),
            Tensor("logits", TensorProto.Types.DataType.Float, [1, steps, vocabulary], new byte[steps * vocabulary * sizeof(float)]));
        var model = problem == "model without cache"
            ? CodeModel.PathOf(CodeModel.ModelFile)
            : CodeModel.Patch(Path.Combine(_scratch, "model"), ["--method", "dense"]);

        var (code, output, error) = CodeModel.Check(model, dataSet, 1e-3, 1e-3);

        Assert.True(code == CliApp.Failed, output + error);
        Assert.Contains(message, error);
        Assert.Contains(dataSet, error);
    }

    private static TensorProto Tensor(string name, TensorProto.Types.DataType type, long[] dims, byte[] data)
    {
        var tensor = new TensorProto { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(data) };
        tensor.Dims.Add(dims);
        return tensor;
    }
}
