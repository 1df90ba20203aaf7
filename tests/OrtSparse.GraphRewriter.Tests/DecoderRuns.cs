using Microsoft.ML.OnnxRuntime;
using Onnx;
using OrtSparse.Cli.Bench.Generate;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>
/// Runs a decoder of <see cref="DecoderModelWriter"/> step by step through plain ONNX Runtime sessions
/// (<see cref="Sessions"/>): the reference the GenAI and patched-model tests compare against.
/// </summary>
internal static class DecoderRuns
{
    /// <summary>
    /// Runs one step: <paramref name="tokens"/> [B, S] after <paramref name="pasts"/> (per layer key and
    /// value [B, Hkv, P, D] of the shape's element type; null for a first prompt, P = 0), attention_mask all ones [B, P + S].
    /// </summary>
    public static Dictionary<string, (long[] Shape, double[] Data)> Step(ModelProto model, DecoderShape shape, long[][] tokens,
        IReadOnlyList<(long[] Shape, double[] Data)>? pasts, bool withOrtSparse)
    {
        var inputs = Inputs(shape, tokens, pasts);
        try
        {
            return Sessions.Run(model, inputs, withOrtSparse);
        }
        finally
        {
            Dispose(inputs);
        }
    }

    /// <summary>The inputs of <see cref="Step"/>, by name; the caller disposes them (<see cref="Dispose"/>).</summary>
    public static Dictionary<string, OrtValue> Inputs(DecoderShape shape, long[][] tokens, IReadOnlyList<(long[] Shape, double[] Data)>? pasts)
    {
        int batch = tokens.Length, length = tokens[0].Length;
        var past = pasts is null ? 0 : (int)pasts[0].Shape[2];
        var inputs = new Dictionary<string, OrtValue>
        {
            [DecoderModelWriter.InputIds] = OrtValue.CreateTensorValueFromMemory(tokens.SelectMany(t => t).ToArray(), [batch, length]),
            [DecoderModelWriter.AttentionMask] = OrtValue.CreateTensorValueFromMemory(Enumerable.Repeat(1L, batch * (past + length)).ToArray(), [batch, past + length]),
        };
        for (var layer = 0; layer < shape.Layers; layer++)
        {
            inputs[DecoderModelWriter.PastKey(layer)] = Cache(pasts?[2 * layer]);
            inputs[DecoderModelWriter.PastValue(layer)] = Cache(pasts?[2 * layer + 1]);
        }
        return inputs;

        OrtValue Cache((long[] Shape, double[] Data)? given)
        {
            var (dims, data) = given ?? ([batch, shape.KvHeads, 0, shape.HeadSize], []);
            return shape.ElementType == TensorProto.Types.DataType.Float16
                ? OrtValue.CreateTensorValueFromMemory(data.Select(v => (Float16)(float)v).ToArray(), dims)
                : OrtValue.CreateTensorValueFromMemory(data.Select(v => (float)v).ToArray(), dims);
        }
    }

    /// <summary>Disposes the values of <paramref name="inputs"/>.</summary>
    public static void Dispose(Dictionary<string, OrtValue> inputs)
    {
        foreach (var value in inputs.Values)
        {
            value.Dispose();
        }
    }

    /// <summary>
    /// Greedy continuation by full recomputation: each new token is the argmax of the last position's
    /// logits over the whole sequence so far, run without a cache; the end-of-sequence token is never
    /// chosen (GenAI's min_length holds it back).
    /// </summary>
    public static int[][] GreedyByRecomputation(ModelProto model, DecoderShape shape, IReadOnlyList<int[]> prompts, int newTokens, bool withOrtSparse)
    {
        var sequences = prompts.Select(p => p.Select(t => (long)t).ToList()).ToArray();
        for (var step = 0; step < newTokens; step++)
        {
            var (logitShape, logits) = Step(model, shape, sequences.Select(s => s.ToArray()).ToArray(), null, withOrtSparse)[DecoderModelWriter.Logits];
            long length = logitShape[1], vocab = logitShape[2];
            for (var b = 0; b < sequences.Length; b++)
            {
                var last = (b * length + length - 1) * vocab;
                var best = -1;
                for (var v = 0; v < vocab; v++)
                {
                    if (v != DecoderModelWriter.EndOfSequenceToken && (best < 0 || logits[last + v] > logits[last + best]))
                    {
                        best = v;
                    }
                }
                sequences[b].Add(best);
            }
        }
        return sequences.Select((s, b) => s.Skip(prompts[b].Length).Select(t => (int)t).ToArray()).ToArray();
    }

    /// <summary>Seeded prompts of equal length with tokens in [2, vocab): neither the end- nor the beginning-of-sequence token.</summary>
    public static int[][] Prompts(int batch, int length, int vocab, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, batch).Select(_ => Enumerable.Range(0, length).Select(_ => random.Next(2, vocab)).ToArray()).ToArray();
    }
}
