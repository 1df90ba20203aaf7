using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Onnx;
using OrtSparse.Cli;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>The shipped code model (models/code-model): patched through the CLI, checked with `ortsparse check`, and its golden data.</summary>
internal static class CodeModel
{
    public const string ModelFile = "models/code-model/model.onnx";
    public const string CalibrationFile = "models/code-model/calibration.onnx";

    public static string PathOf(string relative) => Path.Combine(CliTests.RepositoryRoot(), relative);

    /// <summary>Patches <paramref name="model"/> with a KV cache, <paramref name="calibration"/> and <paramref name="arguments"/> into <paramref name="folder"/>; returns the patched model's path.</summary>
    public static string Patch(string folder, IEnumerable<string> arguments, string model = ModelFile, string calibration = CalibrationFile)
    {
        var output = Path.Combine(folder, "model.onnx");
        var patch = CliTests.Cli(["patch", PathOf(model), "-o", output, "--add-cache", "--calibration", PathOf(calibration), .. arguments]);
        Assert.True(patch.Code == CliApp.Ok, patch.Out + patch.Err);
        return output;
    }

    /// <summary>Runs `ortsparse check` on the test device.</summary>
    public static (int Code, string Out, string Err) Check(string model, string dataSet, double atol, double rtol) =>
        CliTests.Cli(["check", model, dataSet, "--atol", atol.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
            "--rtol", rtol.ToString("R", System.Globalization.CultureInfo.InvariantCulture), "--threads", "2", .. TestDevice.CliArgs]);

    /// <summary>The result column of every row of check's table.</summary>
    public static IReadOnlyList<string> Results(string checkOutput)
    {
        var lines = checkOutput.Split('\n', StringSplitOptions.TrimEntries);
        var rule = Array.FindIndex(lines, l => l.StartsWith("---", StringComparison.Ordinal));
        Assert.True(rule > 0, $"no table in:\n{checkOutput}");
        return lines.Skip(rule + 1).TakeWhile(l => l.Length > 0 && !l.Contains(" outputs m", StringComparison.Ordinal))
            .Select(l => l.Contains("MISMATCH", StringComparison.Ordinal) ? "MISMATCH" : l.Split("  ", StringSplitOptions.RemoveEmptyEntries)[^1].Trim())
            .ToList();
    }

    /// <summary>
    /// Writes a dense golden data set in the layout of tests/data/golden (input_0.pb: input_ids int64 [B, N];
    /// output_0.pb: logits float [B, K, V]) from the independent reference: ONNX Runtime's own kernels running
    /// the unpatched model on all N tokens at once, its logits at the last <paramref name="steps"/> positions.
    /// </summary>
    /// <returns>The data set folder (test_data_set_0).</returns>
    public static string WriteDenseGolden(string folder, long[][] tokens, int steps)
    {
        int batch = tokens.Length, length = tokens[0].Length;
        using var options = new SessionOptions { IntraOpNumThreads = 2 };
        using var session = OrtSparse.Runtime.SessionFactory.CreateSession(PathOf(ModelFile), options);
        using var ids = OrtValue.CreateTensorValueFromMemory(tokens.SelectMany(t => t).ToArray(), [batch, length]);
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, ["input_ids"], [ids], ["logits"]);
        var all = outputs[0].GetTensorDataAsSpan<float>();
        var vocabulary = (int)outputs[0].GetTensorTypeAndShape().Shape[2];
        var last = new float[batch * steps * vocabulary];
        for (var b = 0; b < batch; b++)
        {
            all.Slice(((b * length) + length - steps) * vocabulary, steps * vocabulary).CopyTo(last.AsSpan(b * steps * vocabulary));
        }
        using var logits = OrtValue.CreateTensorValueFromMemory(last, [batch, steps, vocabulary]);
        return WriteDataSet(folder, TensorValues.ToTensorProto(ids, "input_ids"), TensorValues.ToTensorProto(logits, "logits"));
    }

    /// <summary>Writes <paramref name="input"/> and <paramref name="output"/> as folder/test_data_set_0/input_0.pb and output_0.pb.</summary>
    public static string WriteDataSet(string folder, TensorProto input, TensorProto output)
    {
        var dataSet = Path.Combine(folder, "test_data_set_0");
        Directory.CreateDirectory(dataSet);
        File.WriteAllBytes(Path.Combine(dataSet, "input_0.pb"), input.ToByteArray());
        File.WriteAllBytes(Path.Combine(dataSet, "output_0.pb"), output.ToByteArray());
        return dataSet;
    }

    /// <summary>Seeded token ids in [0, <paramref name="vocabulary"/>).</summary>
    public static long[][] Tokens(int batch, int length, int seed, int vocabulary = 4096)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, batch).Select(_ => Enumerable.Range(0, length).Select(_ => (long)random.Next(vocabulary)).ToArray()).ToArray();
    }
}
