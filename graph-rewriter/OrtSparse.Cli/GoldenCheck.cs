using System.Text.RegularExpressions;
using Microsoft.ML.OnnxRuntime;
using Onnx;
using OrtSparse.Runtime;
using OrtSparse.Runtime.Generation;

namespace OrtSparse.Cli;

/// <summary>The comparison of one output of one data set with its expected value.</summary>
/// <param name="DataSet">The data set folder.</param>
/// <param name="Output">The output name.</param>
/// <param name="MaxAbsError">max |actual − expected|.</param>
/// <param name="MaxRelError">max |actual − expected| / |expected| over the elements with |expected| &gt; atol.</param>
/// <param name="Passed">Every element satisfies |actual − expected| ≤ atol + rtol·|expected| and the shapes agree.</param>
/// <param name="Problem">A shape, type or NaN mismatch, when there is one.</param>
public sealed record OutputComparison(string DataSet, string Output, double MaxAbsError, double MaxRelError, bool Passed, string? Problem);

/// <summary>
/// Runs a model on data sets in the layout ONNX's test runners use (<c>test_data_set_N/input_K.pb</c>,
/// <c>output_K.pb</c>, each a serialized TensorProto) and compares the outputs with numpy's allclose rule.
/// </summary>
public static partial class GoldenCheck
{
    /// <summary>Expands each path to its data sets: a folder with input_*.pb files, or a folder of test_data_set_* folders.</summary>
    /// <param name="paths">Folders named on the command line.</param>
    public static IReadOnlyList<string> FindDataSets(IEnumerable<string> paths)
    {
        var sets = new List<string>();
        foreach (var path in paths)
        {
            if (!Directory.Exists(path))
            {
                throw new DirectoryNotFoundException($"data set folder not found: {path}");
            }
            if (Directory.EnumerateFiles(path, "input_*.pb").Any())
            {
                sets.Add(path);
                continue;
            }
            var children = Directory.EnumerateDirectories(path, "test_data_set_*").Order(StringComparer.Ordinal).ToList();
            if (children.Count == 0)
            {
                throw new InvalidDataException($"{path} holds neither input_*.pb files nor test_data_set_* folders");
            }
            sets.AddRange(children);
        }
        return sets;
    }

    /// <summary>
    /// Runs the model at <paramref name="modelPath"/> on each data set and compares every expected output. A model with a
    /// KV cache (patched with <c>--add-cache</c>) takes a data set of <c>input_ids</c> alone in decode mode
    /// (<see cref="DecodeCheck"/>); every other data set feeds the model's inputs as they are.
    /// </summary>
    /// <param name="modelPath">The .onnx model.</param>
    /// <param name="options">Device and threads (a plain session uses the same).</param>
    /// <param name="dataSets">Data set folders.</param>
    /// <param name="atol">Absolute tolerance.</param>
    /// <param name="rtol">Relative tolerance.</param>
    public static IReadOnlyList<OutputComparison> Run(string modelPath, ModelOptions options, IEnumerable<string> dataSets, double atol, double rtol)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelPath);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(dataSets);
        if (!File.Exists(modelPath))
        {
            throw new FileNotFoundException($"Model not found: {modelPath}", modelPath);
        }
        var hasCache = DecodeCheck.HasKvCache(modelPath);
        InferenceSession? session = null;
        Model? model = null;
        try
        {
            var results = new List<OutputComparison>();
            foreach (var folder in dataSets)
            {
                var dataSet = GoldenDataSet.Read(folder);
                if (DecodeCheck.Fits(dataSet, hasCache))
                {
                    model ??= Model.Load(modelPath, options);
                    results.Add(DecodeCheck.Run(model, dataSet, atol, rtol));
                }
                else
                {
                    session ??= SessionFactory.Open(modelPath, options.ToSessionConfig());
                    results.AddRange(RunAsGiven(session, dataSet, atol, rtol));
                }
            }
            return results;
        }
        finally
        {
            session?.Dispose();
            model?.Dispose();
        }
    }

    /// <summary>Feeds the data set's inputs to <paramref name="session"/> and compares every expected output.</summary>
    private static IEnumerable<OutputComparison> RunAsGiven(InferenceSession session, GoldenDataSet dataSet, double atol, double rtol)
    {
        var inputNames = MatchNames(dataSet.Inputs, session.InputNames, dataSet.Folder, "input");
        var outputNames = MatchNames(dataSet.Expected, session.OutputNames, dataSet.Folder, "output");
        var inputValues = dataSet.Inputs.Select(TensorValues.ToOrtValue).ToList();
        try
        {
            using var runOptions = new RunOptions();
            using var outputs = session.Run(runOptions, inputNames, inputValues, outputNames);
            return dataSet.Expected.Select((expected, i) => Compare(dataSet.Folder, outputNames[i], outputs[i], expected, atol, rtol)).ToList();
        }
        finally
        {
            inputValues.ForEach(v => v.Dispose());
        }
    }

    /// <summary>Compares one actual output with its expected tensor.</summary>
    public static OutputComparison Compare(string dataSet, string name, OrtValue actual, TensorProto expected, double atol, double rtol)
    {
        var actualShape = actual.GetTensorTypeAndShape().Shape;
        if (!actualShape.SequenceEqual(expected.Dims))
        {
            return new OutputComparison(dataSet, name, double.NaN, double.NaN, false,
                $"shape [{string.Join(", ", actualShape)}] differs from the expected [{string.Join(", ", expected.Dims)}]");
        }
        var got = TensorValues.ToDoubles(actual);
        var want = TensorValues.ToDoubles(expected);
        double maxAbs = 0, maxRel = 0;
        var passed = true;
        string? problem = null;
        for (var i = 0; i < got.Length; i++)
        {
            if (double.IsNaN(got[i]) || double.IsNaN(want[i]))
            {
                if (double.IsNaN(got[i]) != double.IsNaN(want[i]))
                {
                    passed = false;
                    problem ??= $"element {i} is {got[i]}, expected {want[i]}";
                }
                continue;
            }
            var error = got[i] == want[i] ? 0 : Math.Abs(got[i] - want[i]);
            maxAbs = Math.Max(maxAbs, error);
            if (Math.Abs(want[i]) > atol)
            {
                maxRel = Math.Max(maxRel, error / Math.Abs(want[i]));
            }
            if (!(error <= atol + rtol * Math.Abs(want[i])))
            {
                passed = false;
            }
        }
        return new OutputComparison(dataSet, name, maxAbs, maxRel, passed, problem);
    }

    /// <summary>The tensors of <paramref name="folder"/>'s <paramref name="kind"/>_N.pb files, in the order of N.</summary>
    internal static List<TensorProto> ReadNumbered(string folder, string kind)
    {
        var files = Directory.EnumerateFiles(folder, $"{kind}_*.pb")
            .Select(f => (Path: f, Match: NumberedFile().Match(Path.GetFileName(f))))
            .Where(f => f.Match.Success)
            .OrderBy(f => int.Parse(f.Match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture))
            .Select(f => f.Path)
            .ToList();
        return files.Select(file =>
        {
            try
            {
                return TensorProto.Parser.ParseFrom(File.ReadAllBytes(file));
            }
            catch (Google.Protobuf.InvalidProtocolBufferException e)
            {
                throw new InvalidDataException($"{file} is not a serialized TensorProto: {e.Message}");
            }
        }).ToList();
    }

    /// <summary>Names the tensors after the model's inputs/outputs: by their own name when they carry one the model knows, else by position.</summary>
    private static string[] MatchNames(IReadOnlyList<TensorProto> tensors, IReadOnlyList<string> modelNames, string dataSet, string kind)
    {
        if (tensors.Count > modelNames.Count)
        {
            throw new InvalidDataException($"{dataSet} has {tensors.Count} {kind} files but the model has {modelNames.Count} {kind}s ({string.Join(", ", modelNames)})");
        }
        return tensors.Select((t, i) => modelNames.Contains(t.Name) ? t.Name : modelNames[i]).ToArray();
    }

    [GeneratedRegex(@"^(?:input|output)_(\d+)\.pb$")]
    private static partial Regex NumberedFile();
}

/// <summary>One data set: its folder, its inputs and its expected outputs, in file order.</summary>
internal sealed record GoldenDataSet(string Folder, IReadOnlyList<TensorProto> Inputs, IReadOnlyList<TensorProto> Expected)
{
    public static GoldenDataSet Read(string folder)
    {
        var expected = GoldenCheck.ReadNumbered(folder, "output");
        if (expected.Count == 0)
        {
            throw new InvalidDataException($"{folder} has no output_*.pb files to compare with");
        }
        return new GoldenDataSet(folder, GoldenCheck.ReadNumbered(folder, "input"), expected);
    }
}
