using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntimeGenAI;
using OrtSparse.Runtime;

namespace OrtSparse.Cli.Bench.Generate;

/// <summary>How <see cref="GenAiEngine"/> runs a model.</summary>
public sealed record GenAiEngineOptions
{
    /// <summary>CPU, or CUDA (which needs GenAI's CUDA add-on, see <see cref="GenAiEngine.CudaAddOnFileName"/>).</summary>
    public ExecutionDevice Device { get; init; } = ExecutionDevice.Cpu;

    /// <summary>Intra-op threads of GenAI's session; 0 leaves GenAI's default (half the cores, at most 16).</summary>
    public int IntraOpThreads { get; init; }

    /// <summary>ONNX Runtime's CUDA provider library; null finds it as <see cref="SessionConfig.CudaProviderPath"/> does.</summary>
    public string? CudaProviderPath { get; init; }
}

/// <summary>
/// One measured generation: the new tokens of each sequence, the time to the first of them (the prompt
/// run and the first token's selection) and the time of the rest, one model run and selection each.
/// </summary>
/// <param name="Tokens">Per sequence, the generated tokens (prompt excluded).</param>
/// <param name="TimeToFirstToken">From handing over the prompts until the first new token of every sequence is chosen.</param>
/// <param name="DecodeTime">From then until the last new token is chosen.</param>
public sealed record GenerationMeasurement(int[][] Tokens, TimeSpan TimeToFirstToken, TimeSpan DecodeTime)
{
    /// <summary>Decode steps after the first token: new tokens per sequence − 1.</summary>
    public int DecodeSteps => Tokens.Length == 0 ? 0 : Tokens[0].Length - 1;

    /// <summary>Tokens per second over the decode steps, all sequences of the batch counted; NaN without decode steps.</summary>
    public double DecodeTokensPerSecond => DecodeSteps == 0 ? double.NaN : Tokens.Length * DecodeSteps / DecodeTime.TotalSeconds;
}

/// <summary>
/// The baseline of <c>ortsparse bench generate</c>: ONNX Runtime GenAI (0.15.2) running a model folder
/// in its own format (genai_config.json, see <see cref="DecoderModelWriter"/>), greedy, with its shared
/// past/present KV buffers.
/// </summary>
/// <remarks>
/// GenAI looks for ONNX Runtime itself and takes a libonnxruntime.so already loaded in the process:
/// <see cref="Open"/> loads ours first (the file beside libonnxruntime-genai.so in the app's folder),
/// so GenAI and our sessions share one ONNX Runtime and its one environment, created with our
/// settings. That makes running both in one process safe, and lets GenAI find the CUDA provider that
/// <see cref="SessionFactory"/> registers. GenAI's globals are released once, when the process exits.
/// </remarks>
public sealed class GenAiEngine : IDisposable
{
    /// <summary>GenAI's CUDA add-on, which GenAI loads from its own folder for the CUDA provider; the npm package has no Linux copy of it.</summary>
    public const string CudaAddOnFileName = "libonnxruntime-genai-cuda.so";

    private static readonly object GlobalsLock = new();
    private static OgaHandle? _globals;

    private readonly Config _config;
    private readonly Model _model;
    private bool _disposed;

    private GenAiEngine(Config config, Model model, int vocab, int contextLength)
    {
        _config = config;
        _model = model;
        Vocab = vocab;
        ContextLength = contextLength;
    }

    /// <summary>vocab_size of the model's genai_config.json.</summary>
    public int Vocab { get; }

    /// <summary>context_length of the model's genai_config.json: the longest prompt plus new tokens.</summary>
    public int ContextLength { get; }

    /// <summary>Opens the GenAI model in <paramref name="modelFolder"/> (genai_config.json and the model it names).</summary>
    /// <param name="modelFolder">The folder.</param>
    /// <param name="options">Device and threads; null for the CPU with GenAI's defaults.</param>
    /// <exception cref="FileNotFoundException">The folder has no genai_config.json, or CUDA's libraries are missing.</exception>
    /// <exception cref="InvalidOperationException">GenAI refuses the model or the device.</exception>
    public static GenAiEngine Open(string modelFolder, GenAiEngineOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelFolder);
        options ??= new GenAiEngineOptions();
        ArgumentOutOfRangeException.ThrowIfNegative(options.IntraOpThreads, nameof(options.IntraOpThreads));
        var configPath = Path.Combine(modelFolder, DecoderModelWriter.ConfigFileName);
        if (!File.Exists(configPath))
        {
            throw new FileNotFoundException($"{modelFolder} is not a GenAI model folder: it has no {DecoderModelWriter.ConfigFileName}", configPath);
        }
        var (vocab, contextLength) = ReadLimits(configPath);
        CheckOneOnnxRuntime();
        // Our ONNX Runtime and environment first: GenAI then reuses both instead of loading its own.
        _ = OrtEnv.Instance();
        if (options.Device == ExecutionDevice.Cuda)
        {
            PrepareCuda(options);
        }
        EnsureGlobals();
        Config? config = null;
        try
        {
            config = new Config(Path.GetFullPath(modelFolder));
            config.ClearProviders();
            if (options.Device == ExecutionDevice.Cuda)
            {
                config.AppendProvider("cuda");
            }
            if (options.IntraOpThreads > 0)
            {
                var threads = new JsonObject { ["intra_op_num_threads"] = options.IntraOpThreads };
                config.Overlay(new JsonObject { ["model"] = new JsonObject { ["decoder"] = new JsonObject { ["session_options"] = threads } } }.ToJsonString());
            }
            var model = new Model(config);
            return new GenAiEngine(config, model, vocab, contextLength);
        }
        catch (OnnxRuntimeGenAIException e)
        {
            config?.Dispose();
            throw new InvalidOperationException($"ONNX Runtime GenAI could not open {modelFolder} on {options.Device}: {e.Message}", e);
        }
    }

    /// <summary>
    /// Generates <paramref name="maxNewTokens"/> tokens after each prompt, greedily, every sequence to
    /// the full length (GenAI's min_length holds back the end-of-sequence token). The generator (and
    /// its KV buffers) is created before the clock starts.
    /// </summary>
    /// <param name="prompts">One prompt per sequence of the batch, all of one length.</param>
    /// <param name="maxNewTokens">New tokens per sequence, at least 1.</param>
    public GenerationMeasurement Generate(IReadOnlyList<int[]> prompts, int maxNewTokens)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(prompts);
        var promptLength = CheckPrompts(prompts, maxNewTokens);
        var totalLength = promptLength + maxNewTokens;
        try
        {
            using var parameters = new GeneratorParams(_model);
            parameters.SetSearchOption("batch_size", prompts.Count);
            parameters.SetSearchOption("max_length", totalLength);
            parameters.SetSearchOption("min_length", totalLength);
            parameters.SetSearchOption("do_sample", false);
            using var generator = new Generator(_model, parameters);
            var flat = prompts.SelectMany(p => p).ToArray();

            // Reading the chosen tokens back waits for the device: each time ends when the token exists.
            var clock = Stopwatch.StartNew();
            generator.AppendTokens(flat);
            generator.GenerateNextToken();
            _ = generator.GetNextTokens();
            var firstToken = clock.Elapsed;
            for (var step = 1; step < maxNewTokens; step++)
            {
                generator.GenerateNextToken();
            }
            _ = generator.GetNextTokens();
            var done = clock.Elapsed;

            var tokens = new int[prompts.Count][];
            for (var b = 0; b < prompts.Count; b++)
            {
                var sequence = generator.GetSequence((ulong)b);
                if (sequence.Length != totalLength)
                {
                    throw new InvalidOperationException($"GenAI's sequence {b} has {sequence.Length} tokens, expected {totalLength}");
                }
                tokens[b] = sequence[promptLength..].ToArray();
            }
            return new GenerationMeasurement(tokens, firstToken, done - firstToken);
        }
        catch (OnnxRuntimeGenAIException e)
        {
            throw new InvalidOperationException($"ONNX Runtime GenAI failed to generate: {e.Message}", e);
        }
    }

    /// <summary>Releases the model; GenAI's process-wide state stays until the process exits.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        _model.Dispose();
        _config.Dispose();
    }

    private int CheckPrompts(IReadOnlyList<int[]> prompts, int maxNewTokens)
    {
        if (prompts.Count == 0)
        {
            throw new ArgumentException("at least one prompt is needed", nameof(prompts));
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(maxNewTokens, 1);
        var length = prompts[0]?.Length ?? 0;
        for (var b = 0; b < prompts.Count; b++)
        {
            var prompt = prompts[b] ?? throw new ArgumentException($"prompt {b} is null", nameof(prompts));
            if (prompt.Length == 0 || prompt.Length != length)
            {
                throw new ArgumentException($"prompt {b} has {prompt.Length} tokens; every prompt needs the same positive length ({length})", nameof(prompts));
            }
            var bad = Array.FindIndex(prompt, t => t < 0 || t >= Vocab);
            if (bad >= 0)
            {
                throw new ArgumentException($"prompt {b}, token {bad}: id {prompt[bad]} is outside the vocabulary [0, {Vocab})", nameof(prompts));
            }
        }
        if (length + maxNewTokens > ContextLength)
        {
            throw new ArgumentException($"prompt length ({length}) + new tokens ({maxNewTokens}) exceeds the model's context length ({ContextLength})");
        }
        return length;
    }

    private static (int Vocab, int ContextLength) ReadLimits(string configPath)
    {
        try
        {
            var model = JsonNode.Parse(File.ReadAllText(configPath))?["model"];
            var vocab = model?["vocab_size"]?.GetValue<int>();
            var context = model?["context_length"]?.GetValue<int>();
            if (vocab is not > 0 || context is not > 0)
            {
                throw new InvalidDataException($"{configPath}: model.vocab_size and model.context_length must be positive integers");
            }
            return (vocab.Value, context.Value);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{configPath} is not a readable genai_config.json: {e.Message}", e);
        }
    }

    /// <summary>GenAI would load the file ORT_LIB_PATH names even beside ours: two ONNX Runtimes in one process.</summary>
    private static void CheckOneOnnxRuntime()
    {
        if (Environment.GetEnvironmentVariable("ORT_LIB_PATH") is not { Length: > 0 } named)
        {
            return;
        }
        static string Real(string path) => new FileInfo(Path.GetFullPath(path)).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? Path.GetFullPath(path);
        var ours = Path.Combine(AppContext.BaseDirectory, "libonnxruntime.so");
        if (Real(named) != Real(ours))
        {
            throw new InvalidOperationException(
                $"ORT_LIB_PATH names {named}, but this process runs ONNX Runtime from {ours}; unset ORT_LIB_PATH so that GenAI uses the same ONNX Runtime");
        }
    }

    /// <summary>
    /// GenAI's CUDA path needs its add-on beside libonnxruntime-genai.so, and finds ONNX Runtime's
    /// CUDA provider among the environment's devices (registering it is what <see cref="SessionFactory"/> does).
    /// </summary>
    private static void PrepareCuda(GenAiEngineOptions options)
    {
        var addOn = Path.Combine(AppContext.BaseDirectory, CudaAddOnFileName);
        if (!File.Exists(addOn))
        {
            throw new FileNotFoundException(
                $"ONNX Runtime GenAI runs on CUDA only with its add-on {CudaAddOnFileName} (from GenAI 0.15.2's linux-x64 CUDA release) " +
                $"beside libonnxruntime-genai.so in {AppContext.BaseDirectory}; the npm package com.github.asus4.onnxruntime-genai has a CPU build only.", addOn);
        }
        SessionFactory.GetCudaDevice(new SessionConfig { Device = ExecutionDevice.Cuda, CudaProviderPath = options.CudaProviderPath });
    }

    private static void EnsureGlobals()
    {
        lock (GlobalsLock)
        {
            if (_globals is not null)
            {
                return;
            }
            _globals = new OgaHandle();
            // The C# API's static ORT_DISABLE_TELEMETRY=1 stays in .NET's copy of the environment on Linux; say it natively.
            Utils.DisableTelemetryEvents();
            // OgaShutdown with models alive is undefined, and shutting down between engines would make
            // GenAI set up its globals again on an environment that already has them: release once, at exit.
            AppDomain.CurrentDomain.ProcessExit += (_, _) => _globals.Dispose();
        }
    }
}
