using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Onnx;
using OrtSparse.GraphRewriter;
using OrtSparse.Onnx;
using OrtSparse.Runtime.Generation;

namespace OrtSparse.Cli;

/// <summary>
/// Checks a model with a KV cache in decode mode: a data set of <c>input_ids</c> <c>[B, N]</c> and the expected
/// <c>logits</c> <c>[B, K, V]</c> of the last K positions runs through the runtime's generator, the first N − K tokens
/// as a prompt and each of the last K as one decode step (the steps a sparse method's decode path acts on), and row
/// i is compared with the logits after consuming token N − K + i.
/// </summary>
internal static class DecodeCheck
{
    private const string InputIds = "input_ids";

    /// <summary>Whether the model was patched with a KV cache: its runtime config beside it gives every layer one.</summary>
    public static bool HasKvCache(string modelPath)
    {
        var configPath = RuntimeConfig.PathBeside(modelPath);
        if (!File.Exists(configPath))
        {
            return false;
        }
        var layers = ModelConfig.Load(configPath).Layers;
        return layers.Count > 0 && layers.All(l => l.Cache is not null);
    }

    /// <summary>
    /// Whether the data set runs in decode mode: on a model with a KV cache, one it feeds <c>input_ids</c> alone. On a
    /// model without, a set whose logits cover fewer positions than its tokens is refused, since only decode mode fits it.
    /// </summary>
    /// <exception cref="InvalidDataException">A decode-mode data set for a model without a KV cache.</exception>
    public static bool Fits(GoldenDataSet dataSet, bool hasCache)
    {
        var onlyTokens = dataSet.Inputs.Count == 1 && dataSet.Inputs[0].Name is InputIds or "" && dataSet.Expected.Count == 1;
        if (hasCache || !onlyTokens)
        {
            return hasCache && onlyTokens;
        }
        var (ids, logits) = (dataSet.Inputs[0].Dims, dataSet.Expected[0].Dims);
        if (ids.Count == 2 && logits.Count == 3 && logits[1] < ids[1])
        {
            throw new InvalidDataException(
                $"{dataSet.Folder} is a decode-mode data set (logits of the last {logits[1]} of {ids[1]} tokens), which needs a model with a KV cache: " +
                "patch the model with --add-cache (its runtime config goes beside it)");
        }
        return false;
    }

    /// <summary>Runs the data set in decode mode on <paramref name="model"/> and compares the logits of its last K positions.</summary>
    /// <exception cref="InvalidDataException">The data set does not have decode mode's shapes, or its tokens do not fit the model.</exception>
    public static OutputComparison Run(Model model, GoldenDataSet dataSet, double atol, double rtol)
    {
        var (tokens, expected) = (dataSet.Inputs[0], dataSet.Expected[0]);
        var (batch, length, steps, vocabulary) = Shape(dataSet.Folder, tokens, expected);
        var ids = MemoryMarshal.Cast<byte, long>(OnnxTensor.ReadBytes(tokens)).ToArray();
        var bad = Array.FindIndex(ids, id => id is < 0 or > int.MaxValue);
        if (bad >= 0)
        {
            throw new InvalidDataException($"{dataSet.Folder}: input_ids[{bad / length}, {bad % length}] is {ids[bad]}, not a token id");
        }
        var prompt = length - steps;
        var actual = new float[batch * steps * vocabulary];
        try
        {
            using var generator = model.CreateGenerator(new GeneratorSettings { MaxNewTokens = steps, StopTokenIds = [] });
            generator.AppendTokenSequences(Enumerable.Range(0, batch)
                .Select(b => (IReadOnlyList<int>)ids.Skip(b * length).Take(prompt).Select(id => (int)id).ToArray()).ToList());
            // Reading the prompt's logits runs it alone, so that each forced token below is a decode step of its own.
            var modelVocabulary = generator.GetLogits(0).Length;
            if (modelVocabulary != vocabulary)
            {
                throw new InvalidDataException($"{dataSet.Folder}: the expected logits have a vocabulary of {vocabulary}, the model's logits {modelVocabulary}");
            }
            for (var step = 0; step < steps; step++)
            {
                generator.AppendNextTokens(Enumerable.Range(0, batch).Select(b => (int)ids[b * length + prompt + step]).ToArray());
                for (var b = 0; b < batch; b++)
                {
                    generator.GetLogits(b).CopyTo(actual, (b * steps + step) * vocabulary);
                }
            }
        }
        catch (ArgumentException e)
        {
            // The generator's own checks (token ids outside the vocabulary, a sequence over the maximum length).
            throw new InvalidDataException($"{dataSet.Folder}: {e.Message}", e);
        }
        using var value = OrtValue.CreateTensorValueFromMemory(actual, [batch, steps, vocabulary]);
        var name = expected.Name is { Length: > 0 } given ? given : "logits";
        return GoldenCheck.Compare(dataSet.Folder, $"{name} (decode: last {steps} of {length})", value, expected, atol, rtol);
    }

    /// <summary>B, N, K and V of decode mode, checked: input_ids int64 [B, N], logits [B, K, V] with 1 ≤ K &lt; N.</summary>
    private static (int Batch, int Length, int Steps, int Vocabulary) Shape(string folder, TensorProto tokens, TensorProto expected)
    {
        var (ids, logits) = (tokens.Dims, expected.Dims);
        if (tokens.DataType != (int)TensorProto.Types.DataType.Int64 || ids.Count != 2)
        {
            throw new InvalidDataException(
                $"{folder}: decode mode needs input_ids int64 [B, N], got {(TensorProto.Types.DataType)tokens.DataType} [{string.Join(", ", ids)}]");
        }
        if (logits.Count != 3 || logits[0] != ids[0])
        {
            throw new InvalidDataException(
                $"{folder}: decode mode needs the expected logits as [B, K, V] with B = {ids[0]} (input_ids' batch), got [{string.Join(", ", logits)}]");
        }
        if (logits[1] < 1 || logits[1] >= ids[1])
        {
            throw new InvalidDataException(
                $"{folder}: decode mode runs a prompt of N − K ≥ 1 tokens, then K decode steps: K ({logits[1]}) must be at least 1 and less than N ({ids[1]})");
        }
        if (ids[0] < 1 || logits[2] < 1 || ids[0] * logits[1] * logits[2] > Array.MaxLength)
        {
            throw new InvalidDataException($"{folder}: decode mode cannot hold logits [{string.Join(", ", logits)}]");
        }
        return ((int)ids[0], (int)ids[1], (int)logits[1], (int)logits[2]);
    }

}
