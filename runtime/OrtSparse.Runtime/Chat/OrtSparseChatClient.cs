using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;
using OrtSparse.Runtime.Generation;
using OrtSparse.Runtime.Sampling;

namespace OrtSparse.Runtime.Chat;

/// <summary>
/// OrtSparse as a <see cref="IChatClient"/> (Microsoft.Extensions.AI): a patched model with a tokenizer
/// answers chat messages, streamed or whole. <see cref="ChatOptions"/> map to generation settings:
/// Temperature, TopP, TopK, Seed, MaxOutputTokens and StopSequences; others are ignored.
/// </summary>
public sealed class OrtSparseChatClient : IChatClient
{
    private readonly Model _model;
    private readonly bool _ownsModel;
    private readonly GeneratorSettings _defaults;
    private readonly ChatFormat _format;
    private readonly ChatClientMetadata _metadata;

    /// <summary>A chat client on <paramref name="model"/>.</summary>
    /// <param name="model">A model whose folder has a tokenizer.</param>
    /// <param name="defaults">Settings for what <see cref="ChatOptions"/> leave unset; null means greedy with 512 new tokens.</param>
    /// <param name="ownsModel">Whether disposing the client disposes the model.</param>
    public OrtSparseChatClient(Model model, GeneratorSettings? defaults = null, bool ownsModel = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        var tokenizer = model.Tokenizer ?? throw new ArgumentException("A chat client needs the model's tokenizer (tokenizer.json in its folder).", nameof(model));
        _model = model;
        _ownsModel = ownsModel;
        _defaults = defaults ?? new GeneratorSettings { MaxNewTokens = 512 };
        _format = ChatFormat.For(tokenizer);
        var name = Path.GetFileName(Path.GetDirectoryName(model.Config.Path));
        _metadata = new ChatClientMetadata("ortsparse", null, name);
    }

    /// <inheritdoc />
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in GetStreamingResponseAsync(messages, options, cancellationToken).ConfigureAwait(false))
        {
            updates.Add(update);
        }
        return updates.ToChatResponse();
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var prompt = _model.EncodePrompt(_format.Render(messages));
        using var generator = _model.CreateGenerator(SettingsFor(options));
        generator.AppendTokens(prompt);
        var responseId = Guid.NewGuid().ToString("N");
        await foreach (var piece in Model.StreamAsync(generator, cancellationToken).ConfigureAwait(false))
        {
            yield return new ChatResponseUpdate(ChatRole.Assistant, piece) { ResponseId = responseId, MessageId = responseId, ModelId = _metadata.DefaultModelId };
        }
        var stats = generator.Stats;
        yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(new UsageDetails
        {
            InputTokenCount = prompt.Length,
            OutputTokenCount = stats.GeneratedTokens,
            TotalTokenCount = prompt.Length + stats.GeneratedTokens,
        })])
        {
            ResponseId = responseId,
            MessageId = responseId,
            ModelId = _metadata.DefaultModelId,
            FinishReason = generator.GetFinishReason(0) == FinishReason.Length ? ChatFinishReason.Length : ChatFinishReason.Stop,
        };
    }

    /// <summary>The generation settings <paramref name="options"/> ask for, over the client's defaults and the chat format's stops.</summary>
    internal GeneratorSettings SettingsFor(ChatOptions? options)
    {
        var sampling = _defaults.Sampling;
        if (options?.Temperature is { } temperature)
        {
            sampling = sampling with { Temperature = temperature };
        }
        if (options?.TopP is { } topP)
        {
            sampling = sampling with { TopP = topP };
        }
        if (options?.TopK is { } topK)
        {
            sampling = sampling with { TopK = topK };
        }
        if (options?.Seed is { } seed)
        {
            sampling = sampling with { Seed = seed };
        }
        return _defaults with
        {
            Sampling = sampling,
            MaxNewTokens = options?.MaxOutputTokens ?? _defaults.MaxNewTokens,
            StopTokenIds = [.. _defaults.StopTokenIds ?? [], .. _format.StopTokenIds],
            StopStrings = [.. _defaults.StopStrings, .. _format.StopStrings, .. options?.StopSequences ?? []],
        };
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        return serviceKey is not null ? null
            : serviceType == typeof(ChatClientMetadata) ? _metadata
            : serviceType == typeof(Model) ? _model
            : serviceType.IsInstanceOfType(this) ? this
            : null;
    }

    /// <summary>Disposes the model if the client owns it.</summary>
    public void Dispose()
    {
        if (_ownsModel)
        {
            _model.Dispose();
        }
    }
}
