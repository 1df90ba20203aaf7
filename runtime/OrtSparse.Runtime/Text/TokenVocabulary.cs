using System.Text.Json.Nodes;

namespace OrtSparse.Runtime.Text;

/// <summary>
/// The tokens of a tokenizer.json by id: the model's vocabulary and the added tokens, which win where
/// both name an id or a token (as in Hugging Face tokenizers).
/// </summary>
internal sealed class TokenVocabulary
{
    private readonly string?[] _tokens;
    private readonly bool[] _special;
    private readonly Dictionary<string, int> _modelIds;
    private readonly Dictionary<string, int> _addedIds;

    private TokenVocabulary(string?[] tokens, bool[] special, Dictionary<string, int> modelIds, Dictionary<string, int> addedIds)
    {
        _tokens = tokens;
        _special = special;
        _modelIds = modelIds;
        _addedIds = addedIds;
    }

    /// <summary>Largest id + 1.</summary>
    public int Size => _tokens.Length;

    /// <summary>Reads model.vocab (an object token → id, or Unigram's array of [token, score]) and added_tokens.</summary>
    /// <param name="tokenizer">The parsed tokenizer.json.</param>
    /// <param name="path">The file, for error messages.</param>
    public static TokenVocabulary Read(JsonObject tokenizer, string path)
    {
        var modelIds = new Dictionary<string, int>(StringComparer.Ordinal);
        switch (tokenizer["model"]?["vocab"])
        {
            case JsonObject byToken:
                foreach (var (token, id) in byToken)
                {
                    modelIds[token] = ReadId(id, $"model.vocab[\"{token}\"]", path);
                }
                break;
            case JsonArray pieces:
                for (var id = 0; id < pieces.Count; id++)
                {
                    var token = (pieces[id] as JsonArray)?.FirstOrDefault()?.GetValue<string>()
                                ?? throw new InvalidDataException($"{path}: model.vocab[{id}] is not a [token, score] pair.");
                    modelIds.TryAdd(token, id);
                }
                break;
            default:
                throw new InvalidDataException($"{path} has no model.vocab (an object of token ids or a list of [token, score]).");
        }

        var addedIds = new Dictionary<string, int>(StringComparer.Ordinal);
        var specialIds = new HashSet<int>();
        if (tokenizer["added_tokens"] is JsonArray added)
        {
            foreach (var entry in added)
            {
                var content = entry?["content"]?.GetValue<string>()
                              ?? throw new InvalidDataException($"{path}: an entry of added_tokens has no content.");
                var id = ReadId(entry["id"], $"added_tokens[\"{content}\"].id", path);
                addedIds[content] = id;
                if (entry["special"]?.GetValue<bool>() == true)
                {
                    specialIds.Add(id);
                }
            }
        }

        var size = modelIds.Values.Concat(addedIds.Values).DefaultIfEmpty(-1).Max() + 1;
        if (size == 0)
        {
            throw new InvalidDataException($"{path} has no tokens.");
        }
        var tokens = new string?[size];
        foreach (var (token, id) in modelIds)
        {
            tokens[id] = token;
        }
        foreach (var (token, id) in addedIds)
        {
            tokens[id] = token;
        }
        var special = new bool[size];
        foreach (var id in specialIds)
        {
            special[id] = true;
        }
        return new TokenVocabulary(tokens, special, modelIds, addedIds);
    }

    /// <summary>Throws when <paramref name="id"/> is out of range or names no token (a gap in the ids).</summary>
    /// <param name="id">A token id.</param>
    public void CheckId(int id)
    {
        if ((uint)id >= (uint)_tokens.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(id), id, $"Token id {id} is out of range: the vocabulary size is {_tokens.Length}.");
        }
        if (_tokens[id] is null)
        {
            throw new ArgumentException($"Token id {id} names no token in the vocabulary (size {_tokens.Length}).", nameof(id));
        }
    }

    /// <summary>The token with <paramref name="id"/>, or null where the id names none (the range is not checked).</summary>
    /// <param name="id">An id below <see cref="Size"/>.</param>
    public string? TokenOf(int id) => _tokens[id];

    /// <summary>The id of <paramref name="token"/>, added tokens first, or null.</summary>
    /// <param name="token">The token text as tokenizer.json spells it.</param>
    public int? IdOf(string token) =>
        _addedIds.TryGetValue(token, out var id) || _modelIds.TryGetValue(token, out id) ? id : null;

    /// <summary>Whether <paramref name="id"/> is an added token marked special; false for any other id.</summary>
    /// <param name="id">A token id.</param>
    public bool IsSpecial(int id) => (uint)id < (uint)_special.Length && _special[id];

    private static int ReadId(JsonNode? node, string what, string path)
    {
        var id = node is JsonValue value && value.TryGetValue<int>(out var parsed) ? parsed : -1;
        return id >= 0 ? id : throw new InvalidDataException($"{path}: {what} is not a non-negative integer id.");
    }
}
