using System.Text;
using Microsoft.Extensions.AI;
using OrtSparse.Runtime.Text;

namespace OrtSparse.Runtime.Chat;

/// <summary>
/// Turns chat messages into a prompt. Jinja chat templates from tokenizer_config.json are not
/// interpreted; two fixed formats are: role tags (<c>&lt;|user|&gt;…&lt;|end|&gt;</c>, as Phi-3 and
/// OrtSparse's own models use) when the tokenizer has those tokens, else plain
/// <c>User: …</c>/<c>Assistant:</c> lines.
/// </summary>
public sealed class ChatFormat
{
    private readonly bool _tags;

    private ChatFormat(bool tags, IReadOnlyList<int> stopTokenIds, IReadOnlyList<string> stopStrings)
    {
        _tags = tags;
        StopTokenIds = stopTokenIds;
        StopStrings = stopStrings;
    }

    /// <summary>Token ids that end an assistant turn.</summary>
    public IReadOnlyList<int> StopTokenIds { get; }

    /// <summary>Texts that end an assistant turn.</summary>
    public IReadOnlyList<string> StopStrings { get; }

    /// <summary>The format for <paramref name="tokenizer"/>: role tags when it has <c>&lt;|user|&gt;</c>, <c>&lt;|assistant|&gt;</c> and <c>&lt;|end|&gt;</c>.</summary>
    public static ChatFormat For(Tokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (tokenizer.TokenToId("<|user|>") is not null && tokenizer.TokenToId("<|assistant|>") is not null && tokenizer.TokenToId("<|end|>") is { } end)
        {
            return new ChatFormat(true, [end, .. tokenizer.EosTokenIds], []);
        }
        return new ChatFormat(false, tokenizer.EosTokenIds, ["\nUser:"]);
    }

    /// <summary>The prompt for <paramref name="messages"/>, ending where the assistant's reply begins.</summary>
    public string Render(IEnumerable<ChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var prompt = new StringBuilder();
        foreach (var message in messages)
        {
            var role = message.Role.Value.ToLowerInvariant();
            if (_tags)
            {
                prompt.Append("<|").Append(role).Append("|>\n").Append(message.Text).Append("<|end|>\n");
            }
            else
            {
                prompt.Append(char.ToUpperInvariant(role[0])).Append(role.AsSpan(1)).Append(": ").Append(message.Text).Append('\n');
            }
        }
        return prompt.Append(_tags ? "<|assistant|>\n" : "Assistant:").ToString();
    }
}
