using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;

namespace OrtSparse.Cli.Bench;

/// <summary>What the benchmarks share: binding a decode step with its cache in place, and timing repeated steps.</summary>
internal static class DecodeStep
{
    /// <summary>Binds a SparseAttention decode step: new q/k/v, the shared cache as past and present, lengths and the output.</summary>
    public static void Bind(OrtIoBinding binding, OrtValue query, OrtValue key, OrtValue value, OrtValue keyCache, OrtValue valueCache,
        OrtValue seqlens, OrtValue totalLength, OrtValue output)
    {
        binding.BindInput("query", query);
        binding.BindInput("key", key);
        binding.BindInput("value", value);
        binding.BindInput("past_key", keyCache);
        binding.BindInput("past_value", valueCache);
        binding.BindInput("seqlens_k", seqlens);
        binding.BindInput("total_sequence_length", totalLength);
        binding.BindOutput("present_key", keyCache);
        binding.BindOutput("present_value", valueCache);
        binding.BindOutput("output", output);
    }

    /// <summary>
    /// Runs one bound step and returns when its outputs are complete on the device. RunWithBinding
    /// already returns after ONNX Runtime synchronised the providers' streams at the end of the run
    /// (its default: the run option disable_synchronize_execution_providers is 0); SynchronizeBoundOutputs
    /// then waits for the devices of the bound outputs as well (on CUDA a device synchronisation, on
    /// the CPU nothing), so a timed step never ends while GPU work it launched is still running.
    /// </summary>
    public static void Run(InferenceSession session, RunOptions options, OrtIoBinding binding)
    {
        session.RunWithBinding(options, binding);
        binding.SynchronizeBoundOutputs();
    }

    /// <summary>Runs <paramref name="step"/> <paramref name="warmup"/> times untimed, then <paramref name="steps"/> times timed; milliseconds per step.</summary>
    public static double[] Time(int warmup, int steps, Action step)
    {
        for (var i = 0; i < warmup; i++)
        {
            step();
        }
        var times = new double[steps];
        for (var i = 0; i < steps; i++)
        {
            var started = Stopwatch.GetTimestamp();
            step();
            times[i] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        }
        return times;
    }

    /// <summary>The median of <paramref name="values"/>.</summary>
    public static double Median(double[] values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
