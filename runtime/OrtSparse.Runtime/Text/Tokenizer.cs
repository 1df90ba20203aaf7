using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace OrtSparse.Runtime.Text;

/// <summary>
/// A Hugging Face tokenizer (tokenizer.json, and tokenizer_config.json when present).
/// <para>Encoding runs through ONNX Runtime Extensions' <c>HfJsonTokenizer</c> custom op, in a one-node
/// ONNX Runtime session opened once per tokenizer; it is thread-safe. SentencePiece-style BPE
/// tokenizers (Llama 2, Mistral: a decoder that replaces "▁") are the exception: Extensions 0.14 cuts
/// their text into chunks before whitespace where Hugging Face merges across it (":" + "\n"), so a
/// managed BPE encoder with byte fallback serves them, with Hugging Face's semantics.</para>
/// <para>Decoding is managed, from tokenizer.json's <c>decoder</c> (<c>ByteLevel</c>, or the
/// SentencePiece-style <c>Sequence</c> of Replace "▁" → " ", ByteFallback, Fuse, Strip): streaming
/// needs byte-level control, because a token can end in the middle of a UTF-8 character, and
/// Extensions only decodes whole sequences to strings. Other decoders throw
/// <see cref="NotSupportedException"/> at <see cref="Load"/>.</para>
/// </summary>
public sealed class Tokenizer : IDisposable
{
    private const string TokenizerFileName = "tokenizer.json";
    private const string ConfigFileName = "tokenizer_config.json";

    private readonly ITokenEncoder _encoder;
    private readonly TokenDecoder _decoder;

    private Tokenizer(ITokenEncoder encoder, TokenDecoder decoder, int? bosTokenId, int[] eosTokenIds, bool addBosToken)
    {
        _encoder = encoder;
        _decoder = decoder;
        BosTokenId = bosTokenId;
        EosTokenIds = eosTokenIds;
        AddBosToken = addBosToken;
    }

    /// <summary>Largest token id + 1: the model's vocabulary with the added tokens.</summary>
    public int VocabularySize => _decoder.Vocabulary.Size;

    /// <summary>The id of tokenizer_config.json's <c>bos_token</c>, or null when it names none.</summary>
    public int? BosTokenId { get; }

    /// <summary>The id of tokenizer_config.json's <c>eos_token</c>, or empty when it names none.</summary>
    public IReadOnlyList<int> EosTokenIds { get; }

    /// <summary>tokenizer_config.json's <c>add_bos_token</c> (default false): whether the model expects a
    /// prompt to start with <see cref="BosTokenId"/>. <see cref="Encode(string)"/> never adds it; callers do.</summary>
    public bool AddBosToken { get; }

    /// <summary>Loads a tokenizer.</summary>
    /// <param name="path">A folder holding tokenizer.json (and optionally tokenizer_config.json), or the tokenizer.json file.</param>
    /// <exception cref="FileNotFoundException">No tokenizer.json at <paramref name="path"/>.</exception>
    /// <exception cref="InvalidDataException">A file is not valid JSON, or lacks what a tokenizer needs, or the op rejects it.</exception>
    /// <exception cref="NotSupportedException">The decoder is of a kind this class does not decode, or a SentencePiece-style BPE
    /// uses a pre-tokenizer, normalizer or option that the managed encoder does not implement; the message names it.</exception>
    public static Tokenizer Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var tokenizerPath = Directory.Exists(path) ? Path.Combine(path, TokenizerFileName) : path;
        if (!File.Exists(tokenizerPath))
        {
            throw new FileNotFoundException($"Tokenizer file not found: {tokenizerPath}", tokenizerPath);
        }
        var tokenizer = ReadJsonObject(tokenizerPath);
        var configPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(tokenizerPath))!, ConfigFileName);
        var config = File.Exists(configPath) ? ReadJsonObject(configPath) : new JsonObject();

        var vocabulary = TokenVocabulary.Read(tokenizer, tokenizerPath);
        var decoder = TokenDecoder.Create(tokenizer["decoder"], vocabulary, tokenizerPath);
        var bos = ConfigTokenId(config, "bos_token", vocabulary, configPath);
        var eos = ConfigTokenId(config, "eos_token", vocabulary, configPath);
        var addBos = config["add_bos_token"] is JsonValue addBosValue && addBosValue.TryGetValue<bool>(out var flag) && flag;

        ITokenEncoder encoder;
        if (SentencePieceBpeEncoder.Serves(tokenizer))
        {
            encoder = SentencePieceBpeEncoder.Create(tokenizer, tokenizerPath);
        }
        else
        {
            var (opTokenizer, opConfig) = ToOpInputs(tokenizer, config);
            encoder = ExtensionsTokenizerOp.Open(opTokenizer, opConfig);
        }
        return new Tokenizer(encoder, decoder, bos, eos is { } id ? [id] : [], addBos);
    }

    /// <summary>The id of <paramref name="token"/> (added tokens first, then the model's vocabulary), or null.</summary>
    /// <param name="token">The token as tokenizer.json spells it, e.g. "&lt;|endoftext|&gt;" or "Ġthe".</param>
    public int? TokenToId(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        return _decoder.Vocabulary.IdOf(token);
    }

    /// <summary>Whether <paramref name="id"/> is a special added token (skipped when decoding with skipSpecialTokens).</summary>
    /// <param name="id">A token id; ids out of range are not special.</param>
    public bool IsSpecial(int id) => _decoder.Vocabulary.IsSpecial(id);

    /// <summary>Encodes <paramref name="text"/> without adding BOS or EOS (Hugging Face's add_special_tokens=False);
    /// special tokens written in the text become their ids. Thread-safe.</summary>
    /// <param name="text">The text; empty gives no tokens.</param>
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return Encode([text])[0];
    }

    /// <summary>Encodes every text of <paramref name="texts"/> in one run of the op; see <see cref="Encode(string)"/>.</summary>
    /// <param name="texts">The texts.</param>
    public int[][] Encode(IReadOnlyList<string> texts)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var nonEmpty = new List<string>(texts.Count);
        for (var i = 0; i < texts.Count; i++)
        {
            var text = texts[i] ?? throw new ArgumentNullException(nameof(texts), $"texts[{i}] is null.");
            if (text.Length > 0)
            {
                nonEmpty.Add(text);
            }
        }
        // The op would give the empty string a SentencePiece dummy prefix; Hugging Face gives it no tokens.
        var encoded = nonEmpty.Count > 0 ? _encoder.Encode(nonEmpty) : [];
        var result = new int[texts.Count][];
        var next = 0;
        for (var i = 0; i < texts.Count; i++)
        {
            result[i] = texts[i].Length > 0 ? encoded[next++] : [];
        }
        return result;
    }

    /// <summary>Decodes <paramref name="ids"/> to text; the same text as appending them all to one
    /// <see cref="CreateStream"/> and flushing it.</summary>
    /// <remarks>Where the bytes do not form valid UTF-8, each maximal invalid subsequence becomes one U+FFFD. In a
    /// run of invalid <c>&lt;0xNN&gt;</c> byte-fallback tokens Hugging Face instead replaces every byte of the run,
    /// valid characters included; decoding valid characters as soon as they complete is what lets a stream emit them.</remarks>
    /// <param name="ids">The token ids.</param>
    /// <param name="skipSpecialTokens">Leave special added tokens out.</param>
    /// <exception cref="ArgumentOutOfRangeException">An id is negative or not below <see cref="VocabularySize"/>.</exception>
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false)
    {
        var stream = new TokenizerStream(_decoder, skipSpecialTokens);
        var text = new StringBuilder(ids.Length * 4);
        foreach (var id in ids)
        {
            stream.Write(id, text);
        }
        stream.WriteRest(text);
        return text.ToString();
    }

    /// <summary>A stream that decodes one sequence token by token.</summary>
    /// <param name="skipSpecialTokens">Leave special added tokens out.</param>
    public TokenizerStream CreateStream(bool skipSpecialTokens = false) => new(_decoder, skipSpecialTokens);

    /// <inheritdoc/>
    public void Dispose() => _encoder.Dispose();

    private static JsonObject ReadJsonObject(string path)
    {
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                   ?? throw new InvalidDataException($"{path} does not hold a JSON object.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not valid JSON: {e.Message}", e);
        }
    }

    // A token of tokenizer_config.json: a string, or an object with its content (null or absent: none).
    private static int? ConfigTokenId(JsonObject config, string key, TokenVocabulary vocabulary, string configPath)
    {
        var node = config[key] is JsonObject entry ? entry["content"] : config[key];
        if (node is null)
        {
            return null;
        }
        var token = node is JsonValue value && value.TryGetValue<string>(out var text)
            ? text
            : throw new InvalidDataException($"{configPath}: {key} is neither a string nor an object with a string content.");
        return vocabulary.IdOf(token) ?? throw new InvalidDataException($"{configPath}: {key} \"{token}\" is not in the vocabulary.");
    }

    // What the op is given (the parsed files, changed in place: Load reads nothing from them afterwards).
    // Encode must not add BOS or EOS, so the op sees add_bos_token and add_eos_token false and no
    // post_processor (Extensions adds BOS when the post_processor mentions it). Extensions picks its
    // algorithm by tokenizer_class and reads a missing class as Unigram: a BPE model without one is named
    // as GPT-2's (Extensions tells the SentencePiece variant by the decoder, not the class).
    private static (string Tokenizer, string Config) ToOpInputs(JsonObject tokenizer, JsonObject config)
    {
        tokenizer["post_processor"] = null;
        config["add_bos_token"] = false;
        config["add_eos_token"] = false;
        if (config["tokenizer_class"] is null && tokenizer["model"]?["type"]?.GetValue<string>() == "BPE")
        {
            config["tokenizer_class"] = "GPT2Tokenizer";
        }
        return (tokenizer.ToJsonString(), config.ToJsonString());
    }
}
