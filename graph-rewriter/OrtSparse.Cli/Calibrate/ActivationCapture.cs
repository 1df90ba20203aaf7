using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Onnx;
using OrtSparse.Calibration;
using OrtSparse.GraphRewriter;
using OrtSparse.Onnx;
using OrtSparse.Runtime;

namespace OrtSparse.Cli.Calibrate;

/// <summary>The queries and keys (and values, when asked for) one attention site saw, per head, sequences concatenated.</summary>
/// <param name="Site">The site.</param>
/// <param name="HeadDim">D.</param>
/// <param name="Queries">Per query head: [N, D] rows.</param>
/// <param name="Keys">Per KV head: [N, D] rows.</param>
/// <param name="VisibleKeys">Per query row: the key rows it sees (its own sequence, causally).</param>
/// <param name="Values">Per KV head: [N, Dv] rows; null unless captured.</param>
/// <param name="ValueHeadDim">Dv; 0 unless values were captured.</param>
public sealed record SiteActivations(AttentionSite Site, int HeadDim, float[][] Queries, float[][] Keys, KeyRange[] VisibleKeys,
    float[][]? Values = null, int ValueHeadDim = 0);

/// <summary>
/// Runs the original model on calibration token sequences and captures the query and key inputs of
/// every attention site (the values the op would index: pre-rotary when the rotary embedding is
/// fused into the op, as cached otherwise).
/// </summary>
public static class ActivationCapture
{
    /// <summary>Captures Q and K (and V with <paramref name="withValues"/>) of every replaceable site over <paramref name="sequences"/>.</summary>
    /// <param name="model">The unpatched model.</param>
    /// <param name="sequences">Token id sequences, each run from an empty cache.</param>
    /// <param name="progress">Reports sequences done.</param>
    /// <param name="withValues">Also capture the value input of each site.</param>
    public static IReadOnlyList<SiteActivations> Run(ModelProto model, IReadOnlyList<long[]> sequences, IProgress<int>? progress = null, bool withValues = false)
    {
        var sites = AttentionSiteFinder.Find(model).Where(s => s.CanReplace).ToList();
        if (sites.Count == 0)
        {
            throw new InvalidDataException("the model has no attention site to calibrate");
        }
        var captured = model.Clone();
        var types = new GraphTypes(captured.Graph);
        var tapped = new List<string[]>();  // per site: query, key (, value)
        foreach (var site in sites)
        {
            var inputs = (site.QueryKeyValue ?? throw new InvalidDataException(
                    $"{site.Kind} node '{site.NodeName}' reads a query and key the graph does not hold (packed QKV, or a bias the node adds): they cannot be captured"))
                .Take(withValues ? 3 : 2).ToArray();
            tapped.Add(inputs);
            foreach (var value in inputs.Distinct().Where(v => captured.Graph.Output.All(o => o.Name != v)))
            {
                var type = types.Find(value);
                captured.Graph.Output.Add(OnnxBuilder.TensorValueInfo(value, type?.ElementType ?? TensorProto.Types.DataType.Float,
                    type?.Dims?.Select(d => d is { } known ? (Dim)known : Dim.Unknown)));
            }
        }

        var queries = sites.Select(s => Enumerable.Range(0, s.NumHeads!.Value).Select(_ => new List<float>()).ToArray()).ToArray();
        var keys = sites.Select(s => Enumerable.Range(0, s.KvNumHeads!.Value).Select(_ => new List<float>()).ToArray()).ToArray();
        var values = sites.Select(s => Enumerable.Range(0, s.KvNumHeads!.Value).Select(_ => new List<float>()).ToArray()).ToArray();
        var ranges = new List<KeyRange>();
        var headDims = new int[sites.Count];
        var valueHeadDims = new int[sites.Count];

        using var options = SessionFactory.CreateOptions(new SessionConfig());
        using var session = SessionFactory.CreateSession(captured.ToByteArray(), options);
        var offset = 0;
        for (var s = 0; s < sequences.Count; s++)
        {
            var tokens = sequences[s];
            var inputs = FeedInputs(session, tokens);
            try
            {
                var wanted = tapped.SelectMany(t => t).Distinct().ToArray();
                using var outputs = session.Run(new RunOptions(), inputs.Keys.ToArray(), inputs.Values.ToArray(), wanted);
                var byName = wanted.Zip(outputs).ToDictionary(p => p.First, p => p.Second);
                for (var i = 0; i < sites.Count; i++)
                {
                    var sequenceFirst = sites[i].Rank == 3 || sites[i].QueryKeyValueSequenceFirst;
                    headDims[i] = AppendHeads(byName[tapped[i][0]], sites[i].NumHeads!.Value, sequenceFirst, queries[i]);
                    AppendHeads(byName[tapped[i][1]], sites[i].KvNumHeads!.Value, sequenceFirst, keys[i]);
                    if (withValues)
                    {
                        valueHeadDims[i] = AppendHeads(byName[tapped[i][2]], sites[i].KvNumHeads!.Value, sequenceFirst, values[i]);
                    }
                }
            }
            finally
            {
                foreach (var value in inputs.Values)
                {
                    value.Dispose();
                }
            }
            for (var t = 0; t < tokens.Length; t++)
            {
                ranges.Add(new KeyRange(offset, offset + t + 1));
            }
            offset += tokens.Length;
            progress?.Report(s + 1);
        }
        var visible = ranges.ToArray();
        return sites.Select((site, i) => new SiteActivations(site, headDims[i],
            queries[i].Select(h => h.ToArray()).ToArray(), keys[i].Select(h => h.ToArray()).ToArray(), visible,
            withValues ? values[i].Select(h => h.ToArray()).ToArray() : null, valueHeadDims[i])).ToList();
    }

    /// <summary>Splits a [1, T, H·D] or [1, T, H, D] (<paramref name="sequenceFirst"/>) or [1, H, T, D] tensor into per-head row lists; returns D.</summary>
    private static int AppendHeads(OrtValue value, int heads, bool sequenceFirst, List<float>[] perHead)
    {
        var shape = value.GetTensorTypeAndShape().Shape;
        var data = TensorValues.ToDoubles(value);
        var length = (int)(sequenceFirst ? shape[1] : shape[2]);
        var dim = (int)(shape.Length == 4 ? shape[3] : shape[2] / heads);
        for (var h = 0; h < heads; h++)
        {
            for (var t = 0; t < length; t++)
            {
                var start = sequenceFirst ? (long)t * heads * dim + h * dim : ((long)h * length + t) * dim;
                for (var d = 0; d < dim; d++)
                {
                    perHead[h].Add((float)data[start + d]);
                }
            }
        }
        return dim;
    }

    /// <summary>Inputs for one sequence: token ids, and an all-ones mask, positions and empty caches where the model asks for them.</summary>
    private static Dictionary<string, OrtValue> FeedInputs(InferenceSession session, long[] tokens)
    {
        var inputs = new Dictionary<string, OrtValue>();
        try
        {
            foreach (var (name, metadata) in session.InputMetadata)
            {
                var length = tokens.Length;
                if (name.Contains("input_ids", StringComparison.Ordinal))
                {
                    inputs[name] = metadata.ElementDataType == TensorElementType.Int32
                        ? OrtValue.CreateTensorValueFromMemory(tokens.Select(t => (int)t).ToArray(), [1, length])
                        : OrtValue.CreateTensorValueFromMemory(tokens.ToArray(), [1, length]);
                }
                else if (name.Contains("attention_mask", StringComparison.Ordinal))
                {
                    inputs[name] = OrtValue.CreateTensorValueFromMemory(Enumerable.Repeat(1L, length).ToArray(), [1, length]);
                }
                else if (name.Contains("position_ids", StringComparison.Ordinal))
                {
                    inputs[name] = OrtValue.CreateTensorValueFromMemory(Enumerable.Range(0, length).Select(p => (long)p).ToArray(), [1, length]);
                }
                else if (metadata.Dimensions.Length == 4 && metadata.Dimensions[2] < 0)
                {
                    // A past cache (or method state): batch 1, empty along its length axis.
                    long[] shape = [1, metadata.Dimensions[1], 0, metadata.Dimensions[3]];
                    inputs[name] = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, metadata.ElementDataType, shape);
                }
                else
                {
                    throw new InvalidDataException($"calibrate does not know how to feed the model input '{name}' (it feeds input_ids, attention_mask, position_ids and empty past caches)");
                }
            }
            return inputs;
        }
        catch
        {
            foreach (var value in inputs.Values)
            {
                value.Dispose();
            }
            throw;
        }
    }
}
