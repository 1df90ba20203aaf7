using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace OrtSparse.Runtime.Text;

/// <summary>
/// What each token id decodes to under tokenizer.json's <c>decoder</c>, as bytes: decoding is a byte
/// stream, because a token may end in the middle of a UTF-8 character.
/// <list type="bullet">
/// <item><c>ByteLevel</c> (GPT-2, Llama 3): every character of a token stands for one byte through the
/// GPT-2 byte ↔ character table; a token with a character outside the table stands for its own
/// UTF-8 bytes. All tokens form one byte run.</item>
/// <item>The SentencePiece-style <c>Sequence</c> (Llama 2, Mistral): <c>Replace</c> (e.g. "▁" → " ")
/// on each token, then <c>ByteFallback</c> (a token <c>&lt;0xNN&gt;</c> is the byte NN; consecutive
/// byte tokens form a byte run that any other token ends), <c>Fuse</c>, and <c>Strip</c> of leading
/// characters of the whole text.</item>
/// </list>
/// </summary>
internal sealed class TokenDecoder
{
    private const string Supported =
        "supported: ByteLevel, and a Sequence of Replace (string patterns), ByteFallback, Fuse and Strip (stop 0), in that order";

    private readonly byte[][] _bytes;
    private readonly bool[] _endsByteRun;

    private TokenDecoder(TokenVocabulary vocabulary, byte[][] bytes, bool[] endsByteRun, char stripContent, int stripStart)
    {
        Vocabulary = vocabulary;
        _bytes = bytes;
        _endsByteRun = endsByteRun;
        StripContent = stripContent;
        StripStart = stripStart;
    }

    /// <summary>The tokens.</summary>
    public TokenVocabulary Vocabulary { get; }

    /// <summary>The character that <see cref="StripStart"/> removes from the start of the text.</summary>
    public char StripContent { get; }

    /// <summary>How many leading <see cref="StripContent"/> characters of the whole text are removed (0: none).</summary>
    public int StripStart { get; }

    /// <summary>The bytes that <paramref name="id"/> decodes to (not checked: see <see cref="TokenVocabulary.CheckId"/>).</summary>
    /// <param name="id">A valid token id.</param>
    public ReadOnlySpan<byte> BytesOf(int id) => _bytes[id];

    /// <summary>Whether <paramref name="id"/> ends the byte run before it: its bytes are text of their own, so
    /// an incomplete UTF-8 character before it can no longer complete.</summary>
    /// <param name="id">A valid token id.</param>
    public bool EndsByteRun(int id) => _endsByteRun[id];

    /// <summary>Builds the decoder that tokenizer.json's <c>decoder</c> describes.</summary>
    /// <param name="decoder">The <c>decoder</c> node.</param>
    /// <param name="vocabulary">The tokens.</param>
    /// <param name="path">The file, for error messages.</param>
    /// <exception cref="NotSupportedException">The decoder is none of the supported kinds; the message names it.</exception>
    public static TokenDecoder Create(JsonNode? decoder, TokenVocabulary vocabulary, string path)
    {
        var type = TypeOf(decoder);
        var bytes = new byte[vocabulary.Size][];
        var endsByteRun = new bool[vocabulary.Size];
        switch (type)
        {
            case "ByteLevel":
                var charToByte = ByteLevelTable();
                for (var id = 0; id < bytes.Length; id++)
                {
                    bytes[id] = vocabulary.TokenOf(id) is { } token ? ByteLevelBytes(token, charToByte) : [];
                }
                return new TokenDecoder(vocabulary, bytes, endsByteRun, ' ', 0);
            case "Sequence":
                var steps = SequenceSteps.Read(decoder!["decoders"] as JsonArray, path);
                for (var id = 0; id < bytes.Length; id++)
                {
                    var token = vocabulary.TokenOf(id);
                    if (token is null)
                    {
                        bytes[id] = [];
                        continue;
                    }
                    foreach (var (pattern, content) in steps.Replacements)
                    {
                        token = token.Replace(pattern, content, StringComparison.Ordinal);
                    }
                    if (steps.ByteFallback && FallbackByte(token) is { } fallback)
                    {
                        bytes[id] = [fallback];
                    }
                    else
                    {
                        bytes[id] = Encoding.UTF8.GetBytes(token);
                        endsByteRun[id] = true;
                    }
                }
                return new TokenDecoder(vocabulary, bytes, endsByteRun, steps.StripContent, steps.StripStart);
            default:
                throw new NotSupportedException(decoder is null
                    ? $"{path} has no decoder; {Supported}."
                    : $"The tokenizer decoder type '{type}' in {path} is not supported; {Supported}.");
        }
    }

    private static string? TypeOf(JsonNode? step) => (step?["type"] as JsonValue)?.TryGetValue<string>(out var type) == true ? type : null;

    // GPT-2's table: printable Latin-1 bytes stand for themselves; the other 68 bytes, in order, for U+0100 onwards.
    private static Dictionary<char, byte> ByteLevelTable()
    {
        var table = new Dictionary<char, byte>(256);
        var next = 256;
        for (var b = 0; b < 256; b++)
        {
            var printable = b is >= 0x21 and <= 0x7E or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            table[(char)(printable ? b : next++)] = (byte)b;
        }
        return table;
    }

    private static byte[] ByteLevelBytes(string token, Dictionary<char, byte> charToByte)
    {
        var bytes = new byte[token.Length];
        for (var i = 0; i < token.Length; i++)
        {
            if (!charToByte.TryGetValue(token[i], out bytes[i]))
            {
                return Encoding.UTF8.GetBytes(token);
            }
        }
        return bytes;
    }

    private static byte? FallbackByte(string token) =>
        token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
        && byte.TryParse(token.AsSpan(3, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var value)
            ? value
            : null;

    private sealed record SequenceSteps(List<(string Pattern, string Content)> Replacements, bool ByteFallback, char StripContent, int StripStart)
    {
        // Order matters: Replace acts on tokens before ByteFallback reads them; Strip must see the fused text,
        // not each token.
        public static SequenceSteps Read(JsonArray? steps, string path)
        {
            if (steps is null)
            {
                throw new InvalidDataException($"{path}: the Sequence decoder has no decoders list.");
            }
            var replacements = new List<(string, string)>();
            var byteFallback = false;
            var stripContent = ' ';
            var stripStart = 0;
            var stage = 0; // 0 Replace (repeatable), 1 ByteFallback, 2 Fuse, 3 Strip: each at most once, in this order
            foreach (var step in steps)
            {
                var type = TypeOf(step);
                var (stepStage, ok) = type switch
                {
                    "Replace" => (0, step?["pattern"]?["String"] is JsonValue && step["content"] is JsonValue),
                    "ByteFallback" => (1, true),
                    "Fuse" => (2, true),
                    "Strip" => (3, stage == 2 && step?["stop"]?.GetValue<int>() == 0 && step["content"]?.GetValue<string>() is { Length: 1 }),
                    _ => (-1, false),
                };
                if (!ok || stepStage < stage || (stepStage == stage && stepStage != 0))
                {
                    var names = string.Join(", ", steps.Select(s => TypeOf(s) ?? "?"));
                    throw new NotSupportedException($"The tokenizer decoder Sequence [{names}] in {path} is not supported at its step '{type}'; {Supported}.");
                }
                stage = stepStage;
                switch (type)
                {
                    case "Replace":
                        replacements.Add((step!["pattern"]!["String"]!.GetValue<string>(), step["content"]!.GetValue<string>()));
                        break;
                    case "ByteFallback":
                        byteFallback = true;
                        break;
                    case "Strip":
                        stripContent = step!["content"]!.GetValue<string>()[0];
                        stripStart = step["start"]?.GetValue<int>() ?? 0;
                        break;
                }
            }
            return new SequenceSteps(replacements, byteFallback, stripContent, stripStart);
        }
    }
}
