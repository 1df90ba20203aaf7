using Microsoft.ML.OnnxRuntime;

namespace OrtSparse.Runtime.Tests;

/// <summary>
/// The independent reference for the generator: ONNX Runtime's own kernels on an unpatched model, run
/// on the whole sequence at once without a cache (a model with cache inputs gets them empty).
/// </summary>
internal sealed class FullRecomputation : IDisposable
{
    private readonly SessionOptions _options = new() { IntraOpNumThreads = 1 };
    private readonly InferenceSession _session;

    public FullRecomputation(string modelPath) => _session = SessionFactory.CreateSession(modelPath, _options);

    /// <summary>The logits [sequence][position][vocabulary] of equal-length <paramref name="sequences"/>, run as one batch.</summary>
    public float[][][] Logits(IReadOnlyList<IReadOnlyList<int>> sequences)
    {
        int batch = sequences.Count, length = sequences[0].Count;
        Assert.All(sequences, s => Assert.Equal(length, s.Count));
        var feeds = new Dictionary<string, OrtValue>
        {
            ["input_ids"] = OrtValue.CreateTensorValueFromMemory(sequences.SelectMany(s => s.Select(t => (long)t)).ToArray(), [batch, length]),
        };
        try
        {
            foreach (var (name, metadata) in _session.InputMetadata.Where(i => i.Key != "input_ids"))
            {
                feeds[name] = OrtValue.CreateTensorValueFromMemory(Array.Empty<float>(), [batch, metadata.Dimensions[1], 0, metadata.Dimensions[3]]);
            }
            using var runOptions = new RunOptions();
            using var outputs = _session.Run(runOptions, feeds.Keys.ToArray(), feeds.Values.ToArray(), ["logits"]);
            var logits = outputs[0].GetTensorDataAsSpan<float>();
            var vocabulary = (int)outputs[0].GetTensorTypeAndShape().Shape[^1];
            var result = new float[batch][][];
            for (var b = 0; b < batch; b++)
            {
                result[b] = new float[length][];
                for (var p = 0; p < length; p++)
                {
                    result[b][p] = logits.Slice((b * length + p) * vocabulary, vocabulary).ToArray();
                }
            }
            return result;
        }
        finally
        {
            foreach (var value in feeds.Values)
            {
                value.Dispose();
            }
        }
    }

    /// <summary>Greedy continuation: each new token is the argmax of the last position's logits over the whole sequence so far.</summary>
    public int[] Greedy(int[] prompt, int count)
    {
        var tokens = prompt.ToList();
        for (var step = 0; step < count; step++)
        {
            tokens.Add(ArgMax(Logits([tokens])[0][^1]));
        }
        return tokens.Skip(prompt.Length).ToArray();
    }

    /// <summary>The index of the largest value, the first one on ties.</summary>
    public static int ArgMax(ReadOnlySpan<float> values)
    {
        var best = 0;
        for (var v = 1; v < values.Length; v++)
        {
            best = values[v] > values[best] ? v : best;
        }
        return best;
    }

    public void Dispose()
    {
        _session.Dispose();
        _options.Dispose();
    }
}
