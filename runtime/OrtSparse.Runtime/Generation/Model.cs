using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using OrtSparse.Runtime.Text;

namespace OrtSparse.Runtime.Generation;

/// <summary>
/// A patched model loaded for generation: its ONNX Runtime session on the CPU or the GPU, its runtime
/// config and, when the folder has one, its tokenizer. A model is thread-safe: several
/// <see cref="Generator"/>s may run on it at once from different threads.
/// </summary>
public sealed partial class Model : IDisposable
{
    private readonly TensorResizer _resizer;

    private Model(InferenceSession session, ModelConfig config, Tokenizer? tokenizer, ModelOptions options, int maxLength)
    {
        Session = session;
        Config = config;
        Tokenizer = tokenizer;
        Options = options;
        MaxLength = maxLength;
        SessionConfig = options.ToSessionConfig();
        Allocator = SessionFactory.GetDeviceAllocator(SessionConfig);
        _resizer = new TensorResizer(SessionConfig);
        Inputs = ModelInputs.Of(session, config);
    }

    /// <summary>The runtime config the model was patched with (methods as overridden by <see cref="ModelOptions.Method"/>).</summary>
    public ModelConfig Config { get; }

    /// <summary>The tokenizer of the model's folder, or null when it has no <c>tokenizer.json</c>.</summary>
    public Tokenizer? Tokenizer { get; }

    /// <summary>The options the model was loaded with.</summary>
    public ModelOptions Options { get; }

    /// <summary>The device the model runs on.</summary>
    public ExecutionDevice Device => Options.Device;

    /// <summary>The most tokens a sequence may hold.</summary>
    public int MaxLength { get; }

    internal InferenceSession Session { get; }

    internal SessionConfig SessionConfig { get; }

    internal OrtAllocator Allocator { get; }

    internal ModelInputs Inputs { get; }

    internal TensorResizer Resizer => _resizer;

    /// <summary>
    /// Loads a patched model: <paramref name="path"/> is its folder (holding one <c>*.ortsparse.json</c>
    /// runtime config, the model it names and optionally <c>tokenizer.json</c>), the model's .onnx file,
    /// or its runtime config.
    /// </summary>
    /// <param name="path">A folder, an .onnx file or an .ortsparse.json file.</param>
    /// <param name="options">Device, threads, lengths and method override; null means CPU with defaults.</param>
    /// <exception cref="FileNotFoundException">The folder, model, config or a library is missing.</exception>
    /// <exception cref="InvalidDataException">The config is malformed, or the model's inputs are not ones the generator can feed.</exception>
    public static Model Load(string path, ModelOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        options ??= new ModelOptions();
        options.Validate();
        var configPath = FindConfig(path);
        var config = ModelConfig.Load(configPath);
        var folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(configPath))!;
        var modelPath = System.IO.Path.Combine(folder, config.ModelFileName);
        if (!File.Exists(modelPath))
        {
            throw new FileNotFoundException($"The model {config.ModelFileName} that {configPath} names is not in {folder}.", modelPath);
        }
        if (config.Layers.Count == 0 || config.Layers.Any(l => l.Cache is null))
        {
            throw new InvalidDataException(
                $"{modelPath} has attention layers without a KV cache; generation needs one (patch an input_ids → logits export with --add-cache).");
        }
        if (options.MaxLength is { } wanted && config.MaxLength is { } limit && wanted > limit)
        {
            throw new ArgumentOutOfRangeException(nameof(options), $"MaxLength ({wanted}) exceeds the model's maximum length ({limit}, its rotary table).");
        }
        var maxLength = options.MaxLength ?? config.MaxLength ?? ModelOptions.DefaultMaxLength;
        var tokenizerPath = System.IO.Path.Combine(folder, "tokenizer.json");
        var tokenizer = File.Exists(tokenizerPath) ? Tokenizer.Load(folder) : null;
        try
        {
            var sessionConfig = options.ToSessionConfig();
            using var sessionOptions = SessionFactory.CreateOptions(sessionConfig);
            InferenceSession session;
            if (options.Method is not null || options.MethodParameters is not null)
            {
                var (bytes, layers) = MethodOverride.Apply(modelPath, config, options.Method, options.MethodParameters);
                config = config with { Layers = layers };
                // A model read from memory finds its external data (if any) through this folder.
                sessionOptions.AddSessionConfigEntry("session.model_external_initializers_file_folder_path", folder);
                session = SessionFactory.CreateSession(bytes, sessionOptions);
            }
            else
            {
                session = SessionFactory.CreateSession(modelPath, sessionOptions);
            }
            try
            {
                return new Model(session, config, tokenizer, options, maxLength);
            }
            catch
            {
                session.Dispose();
                throw;
            }
        }
        catch
        {
            tokenizer?.Dispose();
            throw;
        }
    }

    /// <summary>Creates a generator on this model; dispose it when done.</summary>
    /// <param name="settings">Sampling, length and stop conditions; null means greedy with the defaults.</param>
    public Generator CreateGenerator(GeneratorSettings? settings = null) => new(this, settings ?? new GeneratorSettings());

    /// <summary>The vocabulary size of the logits, once known from the graph.</summary>
    internal long? DeclaredVocabularySize => Inputs.VocabularySize;

    private static string FindConfig(string path)
    {
        if (Directory.Exists(path))
        {
            var configs = Directory.GetFiles(path, "*.ortsparse.json");
            return configs.Length switch
            {
                1 => configs[0],
                0 => throw new FileNotFoundException(
                    $"No runtime config (*.ortsparse.json) in {path}: patch the model with `ortsparse patch` (with --add-cache for an input_ids → logits export) first.", path),
                _ => throw new InvalidDataException($"{path} holds several runtime configs ({string.Join(", ", configs.Select(System.IO.Path.GetFileName))}); pass the one to load."),
            };
        }
        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
        {
            return File.Exists(path) ? path : throw new FileNotFoundException($"Runtime config not found: {path}", path);
        }
        if (path.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase))
        {
            if (!File.Exists(path))
            {
                throw new FileNotFoundException($"Model not found: {path}", path);
            }
            var stem = path[..^".onnx".Length];
            var beside = stem.EndsWith(".ortsparse", StringComparison.Ordinal) ? stem + ".json" : stem + ".ortsparse.json";
            return File.Exists(beside) ? beside
                : throw new FileNotFoundException($"{path} has no runtime config beside it ({beside}): it is not a model patched by `ortsparse patch`.", beside);
        }
        throw new FileNotFoundException($"No model folder, .onnx or .ortsparse.json at {path}.", path);
    }

    /// <summary>Closes the session and the tokenizer; dispose the model's generators first.</summary>
    public void Dispose()
    {
        Session.Dispose();
        _resizer.Dispose();
        Tokenizer?.Dispose();
    }
}

/// <summary>The graph inputs and outputs a generator feeds and reads, checked against the runtime config.</summary>
internal sealed record ModelInputs(
    string InputIds, string? AttentionMask, TensorElementType AttentionMaskType, string? PositionIds, string? SeqlensK, string? TotalSequenceLength,
    string Logits, TensorElementType LogitsType, long? VocabularySize, bool SharedBuffer, IReadOnlyList<CacheTensor> Caches)
{
    private static readonly string[] Known = ["input_ids", "attention_mask", "position_ids", "seqlens_k", "total_sequence_length"];

    public static ModelInputs Of(InferenceSession session, ModelConfig config)
    {
        // State inputs have empty defaults: ONNX Runtime lists them as overridable initializers.
        var inputs = session.InputMetadata.Concat(session.OverridableInitializerMetadata).ToDictionary(p => p.Key, p => p.Value);
        var outputs = session.OutputMetadata;
        var caches = new List<CacheTensor>();
        foreach (var layer in config.Layers)
        {
            var cache = layer.Cache!;
            caches.Add(CacheTensor.Of(inputs, outputs, layer, cache.PastKey, cache.PresentKey, "key"));
            caches.Add(CacheTensor.Of(inputs, outputs, layer, cache.PastValue, cache.PresentValue, "value"));
            if (layer.State is { } state)
            {
                caches.Add(CacheTensor.OfState(inputs, outputs, layer, state));
            }
        }
        var cacheInputs = caches.Select(c => c.Input).ToHashSet();
        var unknown = session.InputMetadata.Keys.Where(n => !Known.Contains(n) && !cacheInputs.Contains(n)).ToList();
        if (unknown.Count > 0)
        {
            throw new InvalidDataException(
                $"The model has inputs the generator does not know how to feed: {string.Join(", ", unknown)} (it feeds {string.Join(", ", Known)} and the caches of the runtime config).");
        }
        if (!inputs.ContainsKey("input_ids"))
        {
            throw new InvalidDataException("The model has no input_ids input.");
        }
        if (!outputs.TryGetValue("logits", out var logits))
        {
            throw new InvalidDataException("The model has no logits output.");
        }
        var shared = config.Layers.Select(l => l.Cache!.SharedBuffer).Distinct().ToList();
        if (shared.Count != 1)
        {
            throw new InvalidDataException("The model mixes shared-buffer and concat caches; the generator runs one kind.");
        }
        var lengthsFed = inputs.ContainsKey("seqlens_k") || inputs.ContainsKey("attention_mask");
        if (shared[0] && !lengthsFed)
        {
            throw new InvalidDataException("The model's caches are in shared-buffer mode but it has neither seqlens_k nor attention_mask inputs.");
        }
        var vocabulary = logits.Dimensions is [.., > 0 and var v] ? v : (long?)null;
        return new ModelInputs("input_ids",
            inputs.ContainsKey("attention_mask") ? "attention_mask" : null,
            inputs.TryGetValue("attention_mask", out var mask) ? mask.ElementDataType : TensorElementType.Int64,
            inputs.ContainsKey("position_ids") ? "position_ids" : null,
            inputs.ContainsKey("seqlens_k") ? "seqlens_k" : null,
            inputs.ContainsKey("total_sequence_length") ? "total_sequence_length" : null,
            "logits", logits.ElementDataType, vocabulary, shared[0], caches);
    }
}

/// <summary>One cached tensor of a layer: key, value or method state, with its past input and present output.</summary>
/// <param name="Input">The past graph input.</param>
/// <param name="Output">The present graph output, or null.</param>
/// <param name="ElementType">Its element type.</param>
/// <param name="Heads">Dim 1: the layer's key/value heads.</param>
/// <param name="Width">Dim 3: the head size, or the state's width.</param>
/// <param name="RowsPerPage">Cache positions per row on dim 2: 1, or quest's page size for its summary.</param>
internal sealed record CacheTensor(string Input, string? Output, TensorElementType ElementType, long Heads, long Width, int RowsPerPage)
{
    /// <summary>Rows of this tensor for a cache of <paramref name="capacity"/> positions.</summary>
    public long Rows(long capacity) => (capacity + RowsPerPage - 1) / RowsPerPage;

    public static CacheTensor Of(IReadOnlyDictionary<string, NodeMetadata> inputs, IReadOnlyDictionary<string, NodeMetadata> outputs,
        LayerConfig layer, string? past, string? present, string what)
    {
        if (past is null || !inputs.TryGetValue(past, out var metadata))
        {
            throw new InvalidDataException($"Layer {layer.Layer}: the model has no past {what} input{(past is null ? "" : $" '{past}'")}.");
        }
        if (present is null || !outputs.ContainsKey(present))
        {
            throw new InvalidDataException($"Layer {layer.Layer}: the model has no present {what} output{(present is null ? "" : $" '{present}'")}.");
        }
        var width = metadata.Dimensions is [_, _, _, > 0 and var d] ? d : layer.HeadSize
            ?? throw new InvalidDataException($"Layer {layer.Layer}: the head size of '{past}' is unknown.");
        return new CacheTensor(past, present, metadata.ElementDataType, layer.KvNumHeads, width, 1);
    }

    public static CacheTensor OfState(IReadOnlyDictionary<string, NodeMetadata> inputs, IReadOnlyDictionary<string, NodeMetadata> outputs,
        LayerConfig layer, StateConfig state)
    {
        if (!inputs.TryGetValue(state.Input, out var metadata))
        {
            throw new InvalidDataException($"Layer {layer.Layer}: the model has no state input '{state.Input}'.");
        }
        if (state.Output is null || !outputs.ContainsKey(state.Output))
        {
            throw new InvalidDataException($"Layer {layer.Layer}: the model has no state output{(state.Output is null ? "" : $" '{state.Output}'")}.");
        }
        return new CacheTensor(state.Input, state.Output, metadata.ElementDataType, layer.KvNumHeads, state.Width, state.RowsPerPage);
    }
}
