using System.Diagnostics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using OrtSparse.Runtime.Sampling;
using OrtSparse.Runtime.Text;

namespace OrtSparse.Runtime.Generation;

/// <summary>
/// Generates tokens for one or several sequences on a <see cref="Model"/>: append prompt tokens, then
/// call <see cref="GenerateNextToken"/> until <see cref="IsDone"/>. The KV cache and the methods' state
/// stay in the device's memory, bound to the session through <see cref="OrtIoBinding"/>; for a
/// shared-buffer model one buffer per tensor serves as past and present, so a step appends in place,
/// and the buffers grow by <see cref="ModelOptions.CacheGrowthTokens"/> as the sequence does.
/// </summary>
/// <remarks>
/// Every sequence of a batch holds the same number of cached tokens: prompts are run together up to
/// the shortest one's length (in chunks of <see cref="ModelOptions.PrefillChunkTokens"/>), and a longer
/// prompt's remaining tokens are fed one per step while shorter ones already generate. A generator is
/// not thread-safe; use one per thread (they may share the model).
/// </remarks>
public sealed class Generator : IDisposable
{
    private readonly Model _model;
    private readonly GeneratorSettings _settings;
    private readonly IReadOnlySet<int> _stopTokens;
    private readonly List<SequenceState> _sequences = [];
    private readonly RunOptions _runOptions = new();
    private readonly Dictionary<string, DeviceTensor> _buffers = [];
    private readonly Dictionary<string, OrtValue> _presents = [];
    private DeviceTensor? _mask;
    private DeviceTensor? _logits;
    private int _cacheLength;
    private int _capacity;
    private bool _logitsReady;
    private bool _promptAppended;
    private bool _disposed;
    private Stopwatch? _sinceFirstStep;
    private StatsAccumulator _stats;

    internal Generator(Model model, GeneratorSettings settings)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(settings);
        settings.Validate();
        if (settings.StopStrings.Count > 0 && model.Tokenizer is null)
        {
            throw new ArgumentException("Stop strings need the model's tokenizer, and its folder has no tokenizer.json.", nameof(settings));
        }
        if (model.DeclaredVocabularySize is null)
        {
            throw new InvalidDataException("The model's logits output does not declare its vocabulary size (last dimension).");
        }
        _model = model;
        _settings = settings;
        _stopTokens = (settings.StopTokenIds ?? model.Tokenizer?.EosTokenIds ?? []).ToHashSet();
    }

    /// <summary>Number of sequences (0 before the first prompt).</summary>
    public int SequenceCount => _sequences.Count;

    /// <summary>True when every sequence has stopped (and at least one prompt was appended).</summary>
    public bool IsDone => _sequences.Count > 0 && _sequences.All(s => s.Finish != FinishReason.None);

    /// <summary>Called after each prefill chunk with the prompt tokens run so far and the total to run (long prompts: progress).</summary>
    public Action<int, int>? PrefillProgress { get; set; }

    /// <summary>Counts and timings so far.</summary>
    public GenerationStats Stats => _stats.ToStats(_capacity);

    /// <summary>Appends prompt tokens to a single sequence: the first prompt, or (batch of one) a continuation such as the next chat turn.</summary>
    /// <param name="tokens">Token ids, at least one.</param>
    public void AppendTokens(ReadOnlySpan<int> tokens)
    {
        ThrowIfDisposed();
        if (_sequences.Count == 0)
        {
            AppendTokenSequences([tokens.ToArray()]);
            return;
        }
        if (_sequences.Count != 1)
        {
            throw new InvalidOperationException($"AppendTokens continues a single sequence; this generator runs {_sequences.Count}.");
        }
        CheckPrompt(tokens, 0, _sequences[0].Tokens.Count);
        var sequence = _sequences[0];
        sequence.Tokens.AddRange(tokens);
        sequence.Restart();
        _promptAppended = true;
        _stats.PromptTokens += tokens.Length;
    }

    /// <summary>Appends the prompts of a batch; only before anything was generated.</summary>
    /// <param name="prompts">One non-empty token sequence per batch entry.</param>
    public void AppendTokenSequences(IReadOnlyList<IReadOnlyList<int>> prompts)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(prompts);
        if (_sequences.Count > 0)
        {
            throw new InvalidOperationException("The batch's prompts were already appended; continue a single sequence with AppendTokens.");
        }
        if (prompts.Count == 0)
        {
            throw new ArgumentException("At least one prompt is needed.", nameof(prompts));
        }
        for (var i = 0; i < prompts.Count; i++)
        {
            CheckPrompt(prompts[i]?.ToArray() ?? throw new ArgumentNullException(nameof(prompts), $"Prompt {i} is null."), i, 0);
        }
        foreach (var prompt in prompts)
        {
            var sampler = new TokenSampler(_settings.Sampling with { Seed = _settings.Sampling.Seed + _sequences.Count });
            _sequences.Add(new SequenceState(prompt, sampler, _model.Tokenizer, _settings));
            _stats.PromptTokens += prompt.Count;
        }
        _promptAppended = true;
    }

    /// <summary>
    /// Runs the model on the tokens not yet in the cache (the prompt, in chunks, on the first call)
    /// and samples one token for every sequence that has consumed its prompt and not stopped.
    /// </summary>
    /// <exception cref="InvalidOperationException">No prompt was appended, or every sequence has stopped.</exception>
    public void GenerateNextToken()
    {
        ThrowIfDisposed();
        ThrowIfNoPrompt();
        if (IsDone)
        {
            throw new InvalidOperationException("Every sequence has stopped.");
        }
        var clock = Stopwatch.StartNew();
        _sinceFirstStep ??= Stopwatch.StartNew();
        var fed = RunPending();
        var sampled = 0;
        for (var index = 0; index < _sequences.Count; index++)
        {
            var sequence = _sequences[index];
            sequence.NextToken = -1;
            if (sequence.Finish != FinishReason.None || sequence.Tokens.Count > _cacheLength)
            {
                continue; // stopped, or still feeding its prompt
            }
            if (sequence.Tokens.Count >= _model.MaxLength)
            {
                sequence.Stop(FinishReason.Length);
                continue;
            }
            var token = sequence.Sampler.Sample(sequence.Logits, CollectionsMarshal.AsSpan(sequence.Tokens));
            sequence.Accept(token, _stopTokens, _settings.MaxNewTokens);
            sampled++;
        }
        _logitsReady = false;
        clock.Stop();
        _stats.GeneratedTokens += sampled;
        if (fed > 1)
        {
            _stats.PrefillTime += clock.Elapsed;
        }
        else
        {
            _stats.DecodeTime += clock.Elapsed;
            _stats.DecodeSteps++;
            _stats.DecodeTokens += sampled;
            _stats.CacheReadSum += CacheReadEstimate.Fraction(_model.Config, _cacheLength);
        }
        if (_stats.TimeToFirstToken == TimeSpan.Zero && sampled > 0)
        {
            _stats.TimeToFirstToken = _sinceFirstStep.Elapsed;
        }
    }

    /// <summary>The tokens of sequence <paramref name="index"/>: its prompts and what was generated.</summary>
    public IReadOnlyList<int> GetSequence(int index) => Sequence(index).Tokens;

    /// <summary>The token each sequence gained in the last <see cref="GenerateNextToken"/>, or −1 where it gained none.</summary>
    public int[] GetNextTokens() => _sequences.Select(s => s.NextToken).ToArray();

    /// <summary>
    /// The next-token logits of sequence <paramref name="index"/> (a copy, as float): the model first runs on the tokens
    /// not yet in the cache. With <see cref="AppendNextTokens"/> this scores a given continuation (teacher forcing).
    /// </summary>
    /// <exception cref="InvalidOperationException">No prompt was appended, or the sequence still has prompt tokens to run after a batch's shorter prompts.</exception>
    public float[] GetLogits(int index)
    {
        ThrowIfDisposed();
        ThrowIfNoPrompt();
        var sequence = Sequence(index);
        if (!_logitsReady)
        {
            var clock = Stopwatch.StartNew();
            var fed = RunPending();
            (fed > 1 ? ref _stats.PrefillTime : ref _stats.DecodeTime) += clock.Elapsed;
        }
        if (sequence.Tokens.Count > _cacheLength)
        {
            throw new InvalidOperationException(
                $"Sequence {index} still has {sequence.Tokens.Count - _cacheLength} prompt tokens to run (a batch runs its shorter prompts' continuations first).");
        }
        return sequence.Logits.ToArray();
    }

    /// <summary>
    /// Appends one given token to every sequence, as a continuation of its prompt (not sampled, not counted as generated):
    /// the next <see cref="GetLogits"/> or <see cref="GenerateNextToken"/> runs them as one decode step.
    /// </summary>
    /// <param name="tokens">One token id per sequence.</param>
    /// <exception cref="InvalidOperationException">No prompt was appended, or a sequence has stopped.</exception>
    public void AppendNextTokens(ReadOnlySpan<int> tokens)
    {
        ThrowIfDisposed();
        ThrowIfNoPrompt();
        if (tokens.Length != _sequences.Count)
        {
            throw new ArgumentException($"AppendNextTokens takes one token per sequence: {tokens.Length} given for {_sequences.Count}.", nameof(tokens));
        }
        for (var index = 0; index < _sequences.Count; index++)
        {
            var sequence = _sequences[index];
            if (sequence.Finish != FinishReason.None)
            {
                throw new InvalidOperationException($"Sequence {index} has stopped ({sequence.Finish}); it takes no more tokens.");
            }
            CheckPrompt(tokens.Slice(index, 1), index, sequence.Tokens.Count);
        }
        for (var index = 0; index < _sequences.Count; index++)
        {
            _sequences[index].Tokens.Add(tokens[index]);
        }
        _stats.PromptTokens += tokens.Length;
        _logitsReady = false;
    }

    /// <summary>Runs the model on the tokens not yet in the cache (the prompt in chunks); returns how many it ran.</summary>
    private int RunPending()
    {
        var active = _sequences.Where(s => s.Finish == FinishReason.None).ToList();
        var fed = 0;
        if (_logitsReady || active.Count == 0)
        {
            return fed;
        }
        var pending = active.Min(s => s.Tokens.Count - _cacheLength);
        var toRun = pending;
        if (_promptAppended)
        {
            // A new prompt and the tokens to generate after it size the cache once, not chunk by chunk or token by token.
            EnsureCapacity((int)Math.Min(_model.MaxLength, (long)_cacheLength + pending + _settings.MaxNewTokens));
            _promptAppended = false;
        }
        while (pending > 0)
        {
            var step = Math.Min(pending, PrefillChunk);
            RunStep(step);
            pending -= step;
            fed += step;
            if (toRun > 1)
            {
                PrefillProgress?.Invoke(fed, toRun);
            }
        }
        return fed;
    }

    /// <summary>Why sequence <paramref name="index"/> stopped, or <see cref="FinishReason.None"/>.</summary>
    public FinishReason GetFinishReason(int index) => Sequence(index).Finish;

    /// <summary>Number of tokens sequence <paramref name="index"/> generated.</summary>
    public int GetGeneratedCount(int index) => Sequence(index).Generated;

    /// <summary>
    /// The text sequence <paramref name="index"/> produced since the last call: whole UTF-8 characters
    /// only, without stop tokens, and held back while it might be the start of a stop string.
    /// </summary>
    /// <exception cref="InvalidOperationException">The model has no tokenizer.</exception>
    public string TakeText(int index)
    {
        var sequence = Sequence(index);
        if (_model.Tokenizer is null)
        {
            throw new InvalidOperationException("The model's folder has no tokenizer.json, so there is no text; read the token ids.");
        }
        return sequence.TakeText();
    }

    private SequenceState Sequence(int index)
    {
        ThrowIfDisposed();
        if (index < 0 || index >= _sequences.Count)
        {
            throw new ArgumentOutOfRangeException(nameof(index), $"Sequence {index} does not exist (the generator has {_sequences.Count}).");
        }
        return _sequences[index];
    }

    private void CheckPrompt(ReadOnlySpan<int> tokens, int index, int alreadyHeld)
    {
        if (tokens.Length == 0)
        {
            throw new ArgumentException($"Prompt {index} is empty.");
        }
        var vocabulary = _model.DeclaredVocabularySize!.Value;
        foreach (var token in tokens)
        {
            if (token < 0 || token >= vocabulary)
            {
                throw new ArgumentOutOfRangeException(nameof(tokens), $"Prompt {index} holds token id {token}, outside the vocabulary [0, {vocabulary}).");
            }
        }
        if (alreadyHeld + tokens.Length >= _model.MaxLength)
        {
            throw new ArgumentOutOfRangeException(nameof(tokens),
                $"Prompt {index} ({alreadyHeld + tokens.Length} tokens) leaves no room to generate under the maximum length ({_model.MaxLength}).");
        }
    }

    /// <summary>One model step on the next <paramref name="length"/> tokens of every sequence.</summary>
    private void RunStep(int length)
    {
        var batch = _sequences.Count;
        var total = _cacheLength + length;
        EnsureCapacity(total);
        var inputs = _model.Inputs;
        var ids = new long[batch * length];
        for (var b = 0; b < batch; b++)
        {
            for (var i = 0; i < length; i++)
            {
                ids[b * length + i] = _sequences[b].TokenAt(_cacheLength + i);
            }
        }
        var owned = new List<OrtValue>();
        try
        {
            using var binding = _model.Session.CreateIoBinding();
            owned.Add(OrtValue.CreateTensorValueFromMemory(ids, [batch, length]));
            binding.BindInput(inputs.InputIds, owned[^1]);
            if (inputs.SeqlensK is { } seqlensK)
            {
                owned.Add(OrtValue.CreateTensorValueFromMemory(Enumerable.Repeat(total - 1, batch).ToArray(), [batch]));
                binding.BindInput(seqlensK, owned[^1]);
            }
            if (inputs.TotalSequenceLength is { } totalLength)
            {
                owned.Add(OrtValue.CreateTensorValueFromMemory(new[] { total }, []));
                binding.BindInput(totalLength, owned[^1]);
            }
            if (inputs.PositionIds is { } positionIds)
            {
                var positions = new long[batch * length];
                for (var p = 0; p < positions.Length; p++)
                {
                    positions[p] = _cacheLength + p % length;
                }
                owned.Add(OrtValue.CreateTensorValueFromMemory(positions, [batch, length]));
                binding.BindInput(positionIds, owned[^1]);
            }
            if (inputs.AttentionMask is { } mask)
            {
                owned.Add(_mask!.View([batch, total]));
                binding.BindInput(mask, owned[^1]);
            }
            BindCaches(binding, owned);
            var vocabulary = _model.DeclaredVocabularySize!.Value;
            owned.Add(_logits!.View([batch, length, vocabulary]));
            binding.BindOutput(inputs.Logits, owned[^1]);
            var run = Stopwatch.StartNew();
            _model.Session.RunWithBinding(_runOptions, binding);
            _stats.RunTime += run.Elapsed;
            if (!inputs.SharedBuffer)
            {
                KeepPresents(binding);
            }
            CopyLastLogits(length);
        }
        finally
        {
            foreach (var value in owned)
            {
                value.Dispose();
            }
        }
        _cacheLength = total;
        _logitsReady = true;
    }

    private void BindCaches(OrtIoBinding binding, List<OrtValue> owned)
    {
        var batch = _sequences.Count;
        foreach (var cache in _model.Inputs.Caches)
        {
            if (_model.Inputs.SharedBuffer)
            {
                var buffer = _buffers[cache.Input];
                binding.BindInput(cache.Input, buffer.Value);
                binding.BindOutput(cache.Output!, buffer.Value);
                continue;
            }
            if (_presents.TryGetValue(cache.Input, out var past))
            {
                binding.BindInput(cache.Input, past);
            }
            else
            {
                owned.Add(EmptyTensor(cache.ElementType, [batch, cache.Heads, 0, cache.Width]));
                binding.BindInput(cache.Input, owned[^1]);
            }
            binding.BindOutputToDevice(cache.Output!, _model.Allocator.Info);
        }
    }

    /// <summary>Concat caches: this step's presents become the next step's pasts.</summary>
    private void KeepPresents(OrtIoBinding binding)
    {
        var names = binding.GetOutputNames();
        var values = binding.GetOutputValues();
        for (var i = 0; i < names.Length; i++)
        {
            var cache = _model.Inputs.Caches.FirstOrDefault(c => c.Output == names[i]);
            if (cache is null)
            {
                values[i].Dispose();
                continue;
            }
            if (_presents.Remove(cache.Input, out var old))
            {
                old.Dispose();
            }
            _presents[cache.Input] = values[i];
        }
    }

    private static OrtValue EmptyTensor(TensorElementType type, long[] shape) => type switch
    {
        TensorElementType.Float => OrtValue.CreateTensorValueFromMemory(Array.Empty<float>(), shape),
        TensorElementType.Float16 => OrtValue.CreateTensorValueFromMemory(Array.Empty<Float16>(), shape),
        TensorElementType.Int32 => OrtValue.CreateTensorValueFromMemory(Array.Empty<int>(), shape),
        _ => throw new NotSupportedException($"A cache of {type} is not supported."),
    };

    /// <summary>Grows the cache buffers (shared-buffer models), the attention mask and the logits buffer for <paramref name="total"/> positions.</summary>
    private void EnsureCapacity(int total)
    {
        var batch = _sequences.Count;
        var vocabulary = _model.DeclaredVocabularySize!.Value;
        var chunk = Math.Min(PrefillChunk, Math.Max(1, _sequences.Max(s => s.Tokens.Count) - _cacheLength));
        if (_logits is null || _logits.Count < (long)batch * chunk * vocabulary)
        {
            _logits?.Dispose();
            _logits = DeviceTensor.Allocate(_model.Allocator, _model.Inputs.LogitsType, [(long)batch * chunk * vocabulary]);
        }
        if (total <= _capacity)
        {
            return;
        }
        var growth = _model.Options.CacheGrowthTokens;
        var capacity = (int)Math.Min(_model.MaxLength, RoundUp(Math.Max(total, _capacity + _capacity / 2), growth));
        if (_model.Inputs.SharedBuffer)
        {
            foreach (var cache in _model.Inputs.Caches)
            {
                var grown = DeviceTensor.Allocate(_model.Allocator, cache.ElementType, [batch, cache.Heads, cache.Rows(capacity), cache.Width]);
                if (_buffers.Remove(cache.Input, out var old))
                {
                    using (old)
                    {
                        _model.Resizer.CopyInto(old, grown);
                    }
                }
                _buffers[cache.Input] = grown;
            }
        }
        if (_model.Inputs.AttentionMask is not null)
        {
            _mask?.Dispose();
            _mask = Ones(_model.Inputs.AttentionMaskType, (long)batch * capacity);
        }
        _capacity = capacity;
    }

    /// <summary>
    /// Prompt tokens per step: <see cref="ModelOptions.PrefillChunkTokens"/>, fewer where the step's
    /// logits ([batch, chunk, vocabulary]) would pass 2 GiB, the most a logits buffer here holds.
    /// </summary>
    private int PrefillChunk
    {
        get
        {
            var bytesPerToken = (long)_sequences.Count * _model.DeclaredVocabularySize!.Value * DeviceTensor.ElementSize(_model.Inputs.LogitsType);
            return (int)Math.Max(1, Math.Min(_model.Options.PrefillChunkTokens, int.MaxValue / bytesPerToken));
        }
    }

    private static long RoundUp(long value, long multiple) => (value + multiple - 1) / multiple * multiple;

    /// <summary>A device tensor of ones: an attention mask without padding.</summary>
    private DeviceTensor Ones(TensorElementType type, long count)
    {
        var ones = DeviceTensor.Allocate(_model.Allocator, type, [count]);
        using var host = type == TensorElementType.Int32
            ? OrtValue.CreateTensorValueFromMemory(Enumerable.Repeat(1, (int)count).ToArray(), [count])
            : OrtValue.CreateTensorValueFromMemory(Enumerable.Repeat(1L, (int)count).ToArray(), [count]);
        DeviceTensor.Copy([host], [ones.Value], _model.Device);
        return ones;
    }

    /// <summary>Copies each sequence's logits of the step's last position to the host (as float).</summary>
    private void CopyLastLogits(int length)
    {
        var batch = _sequences.Count;
        var vocabulary = (int)_model.DeclaredVocabularySize!.Value;
        var half = _model.Inputs.LogitsType == TensorElementType.Float16;
        var views = new List<OrtValue>();
        var hosts = new List<OrtValue>();
        try
        {
            for (var b = 0; b < batch; b++)
            {
                var sequence = _sequences[b];
                if (sequence.Logits.Length != vocabulary)
                {
                    sequence.Logits = new float[vocabulary];
                    sequence.HalfLogits = half ? new Float16[vocabulary] : [];
                }
                views.Add(_logits!.View([vocabulary], ((long)b * length + length - 1) * vocabulary));
                hosts.Add(half ? OrtValue.CreateTensorValueFromMemory(sequence.HalfLogits, [vocabulary])
                               : OrtValue.CreateTensorValueFromMemory(sequence.Logits, [vocabulary]));
            }
            DeviceTensor.Copy(views, hosts, _model.Device);
        }
        finally
        {
            foreach (var value in views.Concat(hosts))
            {
                value.Dispose();
            }
        }
        if (half)
        {
            foreach (var sequence in _sequences)
            {
                // ONNX Runtime's Float16 is IEEE binary16, as Half: convert the row vectorised.
                TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<Float16, Half>(sequence.HalfLogits), sequence.Logits);
            }
        }
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    private void ThrowIfNoPrompt()
    {
        if (_sequences.Count == 0)
        {
            throw new InvalidOperationException("Append a prompt (AppendTokens or AppendTokenSequences) before running the model.");
        }
    }

    /// <summary>Frees the cache buffers.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        foreach (var value in _buffers.Values)
        {
            value.Dispose();
        }
        foreach (var value in _presents.Values)
        {
            value.Dispose();
        }
        _mask?.Dispose();
        _logits?.Dispose();
        _runOptions.Dispose();
    }

    /// <summary>Running totals behind <see cref="Stats"/>.</summary>
    private struct StatsAccumulator
    {
        public int PromptTokens;
        public int GeneratedTokens;
        public int DecodeTokens;
        public TimeSpan TimeToFirstToken;
        public TimeSpan PrefillTime;
        public TimeSpan DecodeTime;
        public int DecodeSteps;
        public double CacheReadSum;
        public TimeSpan RunTime;

        public readonly GenerationStats ToStats(int capacity) =>
            new(PromptTokens, GeneratedTokens, DecodeTokens, TimeToFirstToken, PrefillTime, DecodeTime, DecodeSteps,
                DecodeSteps > 0 ? CacheReadSum / DecodeSteps : 1, capacity) { RunTime = RunTime };
    }

    /// <summary>One sequence of the batch: its tokens, sampler, text and stop state.</summary>
    private sealed class SequenceState
    {
        private readonly TokenizerStream? _stream;
        private readonly IReadOnlyList<string> _stopStrings;
        private readonly StringBuilder _text = new();
        private StopStringMatcher? _stops;

        public SequenceState(IReadOnlyList<int> prompt, TokenSampler sampler, Tokenizer? tokenizer, GeneratorSettings settings)
        {
            Tokens = [.. prompt];
            Sampler = sampler;
            _stream = tokenizer?.CreateStream(settings.SkipSpecialTokens);
            _stopStrings = settings.StopStrings;
            _stops = NewStopMatcher();
        }

        public List<int> Tokens { get; }

        public TokenSampler Sampler { get; }

        public float[] Logits { get; set; } = [];

        /// <summary>The host copy of a float16 model's logits row, before conversion.</summary>
        public Float16[] HalfLogits { get; set; } = [];

        public int Generated { get; private set; }

        public int NextToken { get; set; } = -1;

        public FinishReason Finish { get; private set; }

        /// <summary>The token at <paramref name="position"/>, or a filler for a stopped sequence that no longer grows.</summary>
        public long TokenAt(int position) => position < Tokens.Count ? Tokens[position] : Tokens[^1];

        public void Accept(int token, IReadOnlySet<int> stopTokens, int maxNewTokens)
        {
            Tokens.Add(token);
            NextToken = token;
            Generated++;
            if (stopTokens.Contains(token))
            {
                Stop(FinishReason.Stop);
                return;
            }
            if (_stream is not null)
            {
                var piece = _stream.Append(token);
                if (_stops is null)
                {
                    _text.Append(piece);
                }
                else
                {
                    var (emit, stopped) = _stops.Append(piece);
                    _text.Append(emit);
                    if (stopped)
                    {
                        Finish = FinishReason.Stop;
                        return;
                    }
                }
            }
            if (Generated >= maxNewTokens)
            {
                Stop(FinishReason.Length);
            }
        }

        /// <summary>Stops the sequence and releases the text held back for UTF-8 characters or stop strings.</summary>
        public void Stop(FinishReason reason)
        {
            Finish = reason;
            if (_stream is not null)
            {
                var rest = _stream.Flush();
                _text.Append(_stops is null ? rest : _stops.Append(rest).Emit + _stops.Flush());
            }
        }

        /// <summary>A new prompt continues the sequence (a chat turn): generation counts start again.</summary>
        public void Restart()
        {
            Finish = FinishReason.None;
            Generated = 0;
            _stops = NewStopMatcher();
        }

        private StopStringMatcher? NewStopMatcher() => _stopStrings.Count > 0 ? new StopStringMatcher(_stopStrings) : null;

        public string TakeText()
        {
            var text = _text.ToString();
            _text.Clear();
            return text;
        }
    }
}
