using OrtSparse.Cli.Bench.Generate;
using OrtSparse.Runtime;
using DataType = Onnx.TensorProto.Types.DataType;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>
/// bench generate on a tiny decoder: our runtime on the dense-patched model and on the unpatched
/// model (ONNX Runtime's GroupQueryAttention in our loop) generates exactly the tokens ONNX Runtime
/// GenAI generates from the same weights, in fp32 and fp16, batch 1 and 2, with prompts run in
/// chunks; a method with the whole cache in its budget does too.
/// </summary>
public sealed class GenerateBenchTests : IDisposable
{
    private readonly string _work = Directory.CreateTempSubdirectory("ortsparse-bench-generate-").FullName;

    public void Dispose() => Directory.Delete(_work, recursive: true);

    [Theory]
    [InlineData(DataType.Float, 1, 16)]
    [InlineData(DataType.Float, 2, 64)]
    [InlineData(DataType.Float16, 1, 16)]
    public void EveryEngineGeneratesGenAisTokens(DataType type, int batch, int chunk)
    {
        var rows = GenerateBenchmark.Run(Settings(type, batch, chunk), TextWriter.Null);
        Assert.Equal(2 * 4, rows.Count);
        Assert.All(rows, r => Assert.Null(r.Problem));
        Assert.All(rows, r => Assert.Equal(1.0, r.SameAsDense));
        Assert.All(rows, r => Assert.True(r.DecodeTokensPerSecond > 0 && r.TimeToFirstTokenMs > 0, $"{r.Engine} at {r.Context}"));
        Assert.Equal(["dense", GenerateBenchmark.OnnxRuntimeGqa, GenerateBenchmark.GenAiName, "topk"], rows.Select(r => r.Engine).Distinct());
    }

    /// <summary>ONNX Runtime's GroupQueryAttention takes no prompt in chunks for a batch: its row says why, the others run.</summary>
    [Fact]
    public void AnEngineThatCannotRunACaseSaysWhy()
    {
        var rows = GenerateBenchmark.Run(Settings(DataType.Float, batch: 2, chunk: 16), TextWriter.Null);
        var gqa = rows.Single(r => r.Engine == GenerateBenchmark.OnnxRuntimeGqa && r.Context == 40);
        Assert.Contains("batch_size must be 1", gqa.Problem);
        Assert.All(rows.Where(r => r != gqa), r => Assert.Equal(1.0, r.SameAsDense));
    }

    private GenerateBenchSettings Settings(DataType type, int batch, int chunk)
    {
        if (TestDevice.IsCuda)
        {
            Assert.Skip("GenAI runs on the CPU only here (its npm package has no CUDA build)");
        }
        return new GenerateBenchSettings
        {
            Device = ExecutionDevice.Cpu,
            Shape = new DecoderShape { Layers = 2, Hidden = 64, Heads = 4, KvHeads = 2, HeadSize = 16, Intermediate = 96, Vocab = 200, ElementType = type, Seed = 5 },
            Contexts = [7, 40],
            NewTokens = 12,
            Batch = batch,
            Methods = ["topk"],
            Parameters = new Dictionary<string, double> { ["budget"] = 1.0, ["dense_below"] = 0 },
            PrefillChunkTokens = chunk,
            Threads = 1,
            WorkFolder = _work,
        };
    }
}
