using System.Text;
using System.Text.Json.Nodes;

namespace OrtSparse.Runtime.Text;

/// <summary>
/// A managed encoder for SentencePiece-style BPE tokenizer.json files (Llama 2, Mistral: normalizer
/// Prepend "▁" and Replace " " → "▁", no pre-tokenizer, BPE with byte fallback), as Hugging Face
/// tokenizers encodes them: the text is split at added tokens, each other segment is normalized and
/// then merged as one word.
/// <para>Why not ONNX Runtime Extensions: its <c>HfJsonTokenizer</c> (0.14) sends these tokenizers (told
/// by a decoder that replaces "▁") through its SentencePiece BPE path, which cuts a segment into chunks
/// before a space, "▁", "\n" or "\r" once a chunk holds more than 10 symbols, and anywhere once it holds
/// more than 100, and merges each chunk alone (its source calls this a "temporary split logic"). A token
/// that spans a cut (":\n", "))\n") can then not form: 4 of the 29 reference cases of
/// tests/data/tokenizers/metaspace came out different. Byte-level tokenizers, which it serves exactly,
/// stay on the op.</para>
/// </summary>
internal sealed class SentencePieceBpeEncoder : ITokenEncoder
{
    private const string MetaSymbol = "▁";

    private readonly AddedTokenSplitter _addedTokens;
    private readonly Func<string, string>[] _normalizer;
    private readonly BpeModel _model;

    private SentencePieceBpeEncoder(AddedTokenSplitter addedTokens, Func<string, string>[] normalizer, BpeModel model)
    {
        _addedTokens = addedTokens;
        _normalizer = normalizer;
        _model = model;
    }

    /// <summary>Whether Extensions would take <paramref name="tokenizer"/> for a SentencePiece BPE, the kind this class encodes instead:
    /// a BPE model whose decoder is a Sequence that replaces "▁".</summary>
    /// <param name="tokenizer">The parsed tokenizer.json.</param>
    public static bool Serves(JsonObject tokenizer) =>
        tokenizer["model"]?["type"] is JsonValue type && type.TryGetValue<string>(out var name) && name == "BPE"
        && tokenizer["decoder"]?["decoders"] is JsonArray steps
        && steps.Any(step => step?["pattern"]?["String"] is JsonValue pattern && pattern.TryGetValue<string>(out var text) && text == MetaSymbol);

    /// <summary>Builds the encoder; throws <see cref="NotSupportedException"/> naming any normalizer, pre-tokenizer, model
    /// option or added-token option it does not implement.</summary>
    /// <param name="tokenizer">The parsed tokenizer.json.</param>
    /// <param name="path">The file, for error messages.</param>
    public static SentencePieceBpeEncoder Create(JsonObject tokenizer, string path)
    {
        if (tokenizer["pre_tokenizer"] is { } preTokenizer)
        {
            throw new NotSupportedException(
                $"{path}: a SentencePiece-style BPE with a pre-tokenizer ({preTokenizer["type"]}) is not supported; only normalizers (Prepend, Replace).");
        }
        return new SentencePieceBpeEncoder(
            AddedTokenSplitter.Read(tokenizer["added_tokens"] as JsonArray, path),
            ReadNormalizer(tokenizer["normalizer"], path),
            BpeModel.Read(tokenizer["model"]!.AsObject(), path));
    }

    /// <inheritdoc/>
    public int[][] Encode(IReadOnlyList<string> texts)
    {
        var result = new int[texts.Count][];
        var ids = new List<int>();
        for (var i = 0; i < texts.Count; i++)
        {
            ids.Clear();
            foreach (var (segment, addedId) in _addedTokens.Split(texts[i]))
            {
                if (addedId is { } id)
                {
                    ids.Add(id);
                    continue;
                }
                var normalized = segment;
                foreach (var step in _normalizer)
                {
                    normalized = step(normalized);
                }
                _model.Encode(normalized, ids);
            }
            result[i] = [.. ids];
        }
        return result;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
    }

    private static Func<string, string>[] ReadNormalizer(JsonNode? normalizer, string path)
    {
        if (normalizer is null)
        {
            return [];
        }
        var steps = normalizer["type"]?.GetValue<string>() == "Sequence"
            ? (normalizer["normalizers"] as JsonArray ?? []).ToList()
            : [normalizer];
        return [.. steps.Select(step => ReadNormalizerStep(step, path))];
    }

    private static Func<string, string> ReadNormalizerStep(JsonNode? step, string path)
    {
        var type = step?["type"]?.GetValue<string>();
        if (type == "Prepend" && step!["prepend"] is JsonValue prepend)
        {
            var prefix = prepend.GetValue<string>();
            // As Hugging Face: an empty segment stays empty.
            return text => text.Length == 0 ? text : prefix + text;
        }
        if (type == "Replace" && step!["pattern"]?["String"] is JsonValue pattern && step["content"] is JsonValue content)
        {
            var (oldValue, newValue) = (pattern.GetValue<string>(), content.GetValue<string>());
            return text => text.Replace(oldValue, newValue, StringComparison.Ordinal);
        }
        throw new NotSupportedException(
            $"{path}: the normalizer step {step?.ToJsonString()} is not supported for a SentencePiece-style BPE; supported: Prepend, Replace of a string.");
    }

    // Hugging Face matches added tokens in the raw text leftmost-longest before anything else sees it.
    private sealed class AddedTokenSplitter
    {
        private readonly Dictionary<char, (string Content, int Id)[]> _byFirstChar;

        private AddedTokenSplitter(Dictionary<char, (string Content, int Id)[]> byFirstChar) => _byFirstChar = byFirstChar;

        public static AddedTokenSplitter Read(JsonArray? addedTokens, string path)
        {
            var tokens = new List<(string Content, int Id)>();
            foreach (var entry in addedTokens ?? [])
            {
                var content = entry!["content"]!.GetValue<string>();
                foreach (var option in new[] { "lstrip", "rstrip", "single_word", "normalized" })
                {
                    if (entry[option]?.GetValue<bool>() == true)
                    {
                        throw new NotSupportedException($"{path}: added token \"{content}\" sets {option}, which is not supported for a SentencePiece-style BPE.");
                    }
                }
                if (content.Length > 0)
                {
                    tokens.Add((content, entry["id"]!.GetValue<int>()));
                }
            }
            return new AddedTokenSplitter(tokens
                .GroupBy(t => t.Content[0])
                .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Content.Length).ToArray()));
        }

        /// <summary>The segments of <paramref name="text"/>: added tokens (with their id) and the text between them.</summary>
        public IEnumerable<(string Segment, int? AddedId)> Split(string text)
        {
            var start = 0;
            for (var i = 0; i < text.Length; i++)
            {
                if (!_byFirstChar.TryGetValue(text[i], out var candidates))
                {
                    continue;
                }
                foreach (var (content, id) in candidates)
                {
                    if (string.CompareOrdinal(text, i, content, 0, content.Length) == 0)
                    {
                        if (i > start)
                        {
                            yield return (text[start..i], null);
                        }
                        yield return (content, id);
                        start = i + content.Length;
                        i = start - 1;
                        break;
                    }
                }
            }
            if (start < text.Length)
            {
                yield return (text[start..], null);
            }
        }
    }

    // BPE over one word, as Hugging Face's model: characters (or, with byte fallback, <0xNN> byte tokens,
    // or the unknown token) are merged lowest merge rank first, leftmost first among equal ranks.
    private sealed class BpeModel
    {
        private readonly Dictionary<string, int> _vocab;
        private readonly Dictionary<(int Left, int Right), (int Rank, int Id)> _merges;
        private readonly int[]? _byteIds;
        private readonly int? _unkId;
        private readonly bool _fuseUnk;
        private readonly bool _ignoreMerges;

        private BpeModel(Dictionary<string, int> vocab, Dictionary<(int, int), (int, int)> merges, int[]? byteIds, int? unkId, bool fuseUnk, bool ignoreMerges)
        {
            _vocab = vocab;
            _merges = merges;
            _byteIds = byteIds;
            _unkId = unkId;
            _fuseUnk = fuseUnk;
            _ignoreMerges = ignoreMerges;
        }

        public static BpeModel Read(JsonObject model, string path)
        {
            foreach (var option in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
            {
                if (model[option] is JsonValue value && value.GetValue<string>().Length > 0)
                {
                    throw new NotSupportedException($"{path}: model.{option} is not supported for a SentencePiece-style BPE.");
                }
            }
            if (model["dropout"] is JsonValue dropout && dropout.GetValue<double>() > 0)
            {
                throw new NotSupportedException($"{path}: model.dropout is not supported (encoding would be random).");
            }
            var vocab = (model["vocab"] as JsonObject ?? throw new InvalidDataException($"{path}: model.vocab of a BPE is not an object of token ids."))
                .ToDictionary(entry => entry.Key, entry => entry.Value!.GetValue<int>(), StringComparer.Ordinal);
            var merges = ReadMerges(model["merges"] as JsonArray, vocab, path);

            int[]? byteIds = null;
            if (model["byte_fallback"]?.GetValue<bool>() == true)
            {
                byteIds = new int[256];
                for (var b = 0; b < 256; b++)
                {
                    byteIds[b] = vocab.TryGetValue($"<0x{b:X2}>", out var id) ? id : -1;
                }
            }
            int? unkId = null;
            if (model["unk_token"] is JsonValue unk)
            {
                var token = unk.GetValue<string>();
                unkId = vocab.TryGetValue(token, out var id) ? id : throw new InvalidDataException($"{path}: model.unk_token \"{token}\" is not in model.vocab.");
            }
            return new BpeModel(vocab, merges, byteIds, unkId, model["fuse_unk"]?.GetValue<bool>() == true, model["ignore_merges"]?.GetValue<bool>() == true);
        }

        /// <summary>Appends the ids of <paramref name="word"/> to <paramref name="ids"/>.</summary>
        public void Encode(string word, List<int> ids)
        {
            if (word.Length == 0)
            {
                return;
            }
            if (_ignoreMerges && _vocab.TryGetValue(word, out var whole))
            {
                ids.Add(whole);
                return;
            }
            var symbols = InitialSymbols(word);
            var next = new int[symbols.Count];
            var prev = new int[symbols.Count];
            for (var i = 0; i < symbols.Count; i++)
            {
                next[i] = i + 1 < symbols.Count ? i + 1 : -1;
                prev[i] = i - 1;
            }
            var removed = new bool[symbols.Count];
            var queue = new PriorityQueue<(int Position, int Id), (int Rank, int Position)>();
            void Enqueue(int left)
            {
                if (left >= 0 && next[left] >= 0 && _merges.TryGetValue((symbols[left], symbols[next[left]]), out var merge))
                {
                    queue.Enqueue((left, merge.Id), (merge.Rank, left));
                }
            }
            for (var i = 0; i + 1 < symbols.Count; i++)
            {
                Enqueue(i);
            }
            while (queue.TryDequeue(out var top, out _))
            {
                // An entry is stale when its left symbol was merged away or its pair changed since it was queued.
                var right = next[top.Position];
                if (removed[top.Position] || right < 0
                    || !_merges.TryGetValue((symbols[top.Position], symbols[right]), out var merge) || merge.Id != top.Id)
                {
                    continue;
                }
                symbols[top.Position] = top.Id;
                removed[right] = true;
                next[top.Position] = next[right];
                if (next[right] >= 0)
                {
                    prev[next[right]] = top.Position;
                }
                Enqueue(prev[top.Position]);
                Enqueue(top.Position);
            }
            for (var i = 0; i >= 0; i = next[i])
            {
                ids.Add(symbols[i]);
            }
        }

        private List<int> InitialSymbols(string word)
        {
            var symbols = new List<int>(word.Length);
            var lastWasUnknown = false;
            Span<byte> utf8 = stackalloc byte[4];
            foreach (var rune in word.EnumerateRunes())
            {
                if (_vocab.TryGetValue(rune.ToString(), out var id))
                {
                    symbols.Add(id);
                    lastWasUnknown = false;
                    continue;
                }
                var bytes = utf8[..rune.EncodeToUtf8(utf8)];
                if (HasByteTokens(bytes))
                {
                    foreach (var b in bytes)
                    {
                        symbols.Add(_byteIds![b]);
                    }
                    lastWasUnknown = false;
                    continue;
                }
                // As Hugging Face: the unknown token (one for a run with fuse_unk), or nothing when the model has none.
                if (_unkId is { } unk && !(_fuseUnk && lastWasUnknown))
                {
                    symbols.Add(unk);
                }
                lastWasUnknown = true;
            }
            return symbols;
        }

        private bool HasByteTokens(ReadOnlySpan<byte> bytes)
        {
            if (_byteIds is null)
            {
                return false;
            }
            foreach (var b in bytes)
            {
                if (_byteIds[b] < 0)
                {
                    return false;
                }
            }
            return true;
        }

        private static Dictionary<(int, int), (int, int)> ReadMerges(JsonArray? merges, Dictionary<string, int> vocab, string path)
        {
            if (merges is null)
            {
                throw new InvalidDataException($"{path}: model.merges is missing.");
            }
            var result = new Dictionary<(int, int), (int, int)>(merges.Count);
            for (var rank = 0; rank < merges.Count; rank++)
            {
                // Either ["a", "b"] or, in older files, "a b".
                var pair = merges[rank] switch
                {
                    JsonArray array when array.Count == 2 => [array[0]!.GetValue<string>(), array[1]!.GetValue<string>()],
                    JsonValue value => value.GetValue<string>().Split(' '),
                    _ => [],
                };
                if (pair.Length != 2 || !vocab.TryGetValue(pair[0], out var left) || !vocab.TryGetValue(pair[1], out var right)
                    || !vocab.TryGetValue(pair[0] + pair[1], out var merged))
                {
                    throw new InvalidDataException($"{path}: model.merges[{rank}] ({merges[rank]?.ToJsonString()}) is not a pair of tokens whose concatenation is in the vocabulary.");
                }
                result[(left, right)] = (rank, merged); // as Hugging Face: a repeated pair keeps its last rank
            }
            return result;
        }
    }
}
