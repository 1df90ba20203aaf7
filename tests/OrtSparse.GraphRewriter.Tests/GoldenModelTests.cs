using System.Text.Json;
using OrtSparse.Cli;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>
/// Golden tests of the shipped code model (issue 7): every set of tests/data/golden/code-model/cases.json, whose
/// logits come from an independent PyTorch reference (its own Llama forward and each method's selection written
/// from docs/ops.md) on the GPU host, checked in decode mode against the model patched with the set's arguments.
/// </summary>
public sealed class GoldenModelTests : IDisposable
{
    private const string CasesFile = "tests/data/golden/code-model/cases.json";
    private const string NoCases = "(cases.json is missing)";

    private readonly string _scratch = Directory.CreateTempSubdirectory("ortsparse-golden-").FullName;

    public void Dispose() => Directory.Delete(_scratch, recursive: true);

    /// <summary>The sets cases.json lists; without the file one row that fails, so that missing golden data never passes as skipped.</summary>
    public static TheoryData<string> Sets() =>
        File.Exists(CodeModel.PathOf(CasesFile)) ? [.. GoldenCases.Load(CodeModel.PathOf(CasesFile)).Sets.Keys] : [NoCases];

    [Theory]
    [MemberData(nameof(Sets))]
    public void TheModelPatchedWithASetsArgumentsMatchesItsGoldenLogits(string set)
    {
        var casesPath = CodeModel.PathOf(CasesFile);
        Assert.True(File.Exists(casesPath), $"{CasesFile} is missing: the golden sets come from the PyTorch reference on the GPU host");
        var cases = GoldenCases.Load(casesPath);
        Assert.True(cases.Sets.TryGetValue(set, out var arguments), $"{CasesFile} no longer lists the set '{set}'");
        var folder = Path.Combine(Path.GetDirectoryName(casesPath)!, set);
        Assert.True(Directory.Exists(Path.Combine(folder, "test_data_set_0")), $"the golden set '{set}' that {CasesFile} lists is missing: {folder}/test_data_set_0");

        var model = CodeModel.Patch(Path.Combine(_scratch, set), arguments, cases.Model, cases.Calibration);
        var (code, output, error) = CodeModel.Check(model, folder, cases.Atol, cases.Rtol);

        Assert.True(code == CliApp.Ok, output + error);
        var results = CodeModel.Results(output);
        Assert.NotEmpty(results);
        Assert.All(results, r => Assert.Equal("ok", r));
    }

    /// <summary>
    /// The check tells methods apart: on a dense golden set of 160 tokens (ONNX Runtime on the unpatched model), the model
    /// patched dense passes, and the model patched with streaming (sink and a 16-key window from 64 keys on) fails.
    /// </summary>
    [Fact]
    public void TheCheckPassesDenseAndFailsStreamingOnADenseGoldenSet()
    {
        var golden = CodeModel.WriteDenseGolden(Path.Combine(_scratch, "dense-golden"), CodeModel.Tokens(1, 160, seed: 7), steps: 8);

        var dense = CodeModel.Check(CodeModel.Patch(Path.Combine(_scratch, "dense"), ["--method", "dense"]), golden, 1e-3, 1e-3);
        Assert.True(dense.Code == CliApp.Ok, dense.Out + dense.Err);
        Assert.Equal(["ok"], CodeModel.Results(dense.Out));

        var streamingModel = CodeModel.Patch(Path.Combine(_scratch, "streaming"), ["--method", "streaming", "--window", "16", "--dense-below", "64"]);
        var streaming = CodeModel.Check(streamingModel, golden, 1e-3, 1e-3);
        Assert.True(streaming.Code == CliApp.Failed, streaming.Out + streaming.Err);
        Assert.Equal(["MISMATCH"], CodeModel.Results(streaming.Out));
        Assert.Contains("1 of 1 outputs mismatch", streaming.Out);
    }

    /// <summary>tests/data/golden/code-model/cases.json: the models (paths from the repository root), tolerances and each set's patch arguments.</summary>
    private sealed record GoldenCases(string Model, string Calibration, double Atol, double Rtol, Dictionary<string, string[]> Sets)
    {
        private static readonly JsonSerializerOptions Options = new() { PropertyNameCaseInsensitive = true };

        public static GoldenCases Load(string path)
        {
            var cases = JsonSerializer.Deserialize<GoldenCases>(File.ReadAllText(path), Options);
            return cases is { Model: not null, Calibration: not null, Sets.Count: > 0 } ? cases : throw new InvalidDataException($"{path} lacks model, calibration or sets");
        }
    }
}
