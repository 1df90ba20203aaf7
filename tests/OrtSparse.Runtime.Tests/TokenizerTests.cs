using System.Text.Json;
using System.Text.Json.Nodes;
using OrtSparse.Runtime.Text;

namespace OrtSparse.Runtime.Tests;

/// <summary>
/// The tokenizer against Hugging Face tokenizers 0.23.2: tests/data/tokenizers/{bytelevel,metaspace} hold
/// two tokenizers and, for every text of cases.json and a held-out Python file, the ids of
/// encode(text, add_special_tokens=False) and decode(ids, skip_special_tokens=False). bytelevel encodes
/// through ONNX Runtime Extensions' op, metaspace through the managed SentencePiece BPE encoder.
/// </summary>
public class TokenizerTests
{
    public static readonly string[] TokenizerNames = ["bytelevel", "metaspace"];

    // Before References: static fields initialise in text order.
    private static readonly JsonSerializerOptions JsonOptions = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private static readonly Dictionary<string, Lazy<Tokenizer>> Tokenizers = TokenizerNames.ToDictionary(
        name => name, name => new Lazy<Tokenizer>(() => Tokenizer.Load(FolderOf(name))));

    private static readonly Dictionary<string, Reference> References = TokenizerNames.ToDictionary(
        name => name, name => JsonSerializer.Deserialize<Reference>(
            File.ReadAllText(Path.Combine(FolderOf(name), "reference_ids.json")), JsonOptions)!);

    public static TheoryData<string, int> Cases()
    {
        var data = new TheoryData<string, int>();
        foreach (var name in TokenizerNames)
        {
            for (var i = 0; i < References[name].Cases.Count; i++)
            {
                data.Add(name, i);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void EncodeMatchesHuggingFace(string name, int index)
    {
        var (text, ids, _) = References[name].Cases[index];
        Assert.Equal(ids, Tokenizers[name].Value.Encode(text));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void DecodeMatchesHuggingFace(string name, int index)
    {
        var (_, ids, decoded) = References[name].Cases[index];
        Assert.Equal(decoded, Tokenizers[name].Value.Decode(ids));
    }

    // Every Append result extends a prefix of the decoded text, so no character split across tokens is
    // emitted early as U+FFFD; the whole stream, flushed, is the decoded text.
    [Theory]
    [MemberData(nameof(Cases))]
    public void StreamEmitsOnlyFinalTextAndEndsWithTheDecodedText(string name, int index)
    {
        var (_, ids, decoded) = References[name].Cases[index];
        var stream = Tokenizers[name].Value.CreateStream();
        var emitted = "";
        foreach (var id in ids)
        {
            emitted += stream.Append(id);
            Assert.StartsWith(emitted, decoded, StringComparison.Ordinal);
        }
        Assert.Equal(decoded, emitted + stream.Flush());
    }

    [Theory]
    [MemberData(nameof(TokenizerNamesData))]
    public void BatchEncodeEqualsSingleEncodes(string name)
    {
        var tokenizer = Tokenizers[name].Value;
        // Texts of many lengths, so the op pads rows; an empty one among them, which skips the op.
        var texts = References[name].Cases.Select(c => c.Text).Append("").Prepend("x").ToList();
        var batch = tokenizer.Encode(texts);
        Assert.Equal(texts.Count, batch.Length);
        for (var i = 0; i < texts.Count; i++)
        {
            Assert.Equal(tokenizer.Encode(texts[i]), batch[i]);
        }
    }

    [Theory]
    [MemberData(nameof(TokenizerNamesData))]
    public void EncodeIsThreadSafe(string name)
    {
        var tokenizer = Tokenizers[name].Value;
        var cases = References[name].Cases;
        var results = new int[cases.Count * 4][];
        Parallel.For(0, results.Length, i => results[i] = tokenizer.Encode(cases[i % cases.Count].Text));
        for (var i = 0; i < results.Length; i++)
        {
            Assert.Equal(cases[i % cases.Count].Ids, results[i]);
        }
    }

    [Theory]
    [MemberData(nameof(TokenizerNamesData))]
    public void EmptyTextHasNoTokens(string name)
    {
        Assert.Empty(Tokenizers[name].Value.Encode(""));
        Assert.Equal([[], []], Tokenizers[name].Value.Encode(["", ""]));
        Assert.Equal("", Tokenizers[name].Value.Decode([]));
    }

    [Theory]
    [MemberData(nameof(TokenizerNamesData))]
    public void VocabularySizeIsHuggingFaces(string name) =>
        Assert.Equal(References[name].VocabSize, Tokenizers[name].Value.VocabularySize);

    // Ids as tokenizer.json's added_tokens and tokenizer_config.json name them.
    [Theory]
    [InlineData("bytelevel", 0, 0, "<|endoftext|>", 0)]
    [InlineData("metaspace", 1, 2, "</s>", 2)]
    public void SpecialTokensComeFromTheConfig(string name, int bos, int eos, string token, int id)
    {
        var tokenizer = Tokenizers[name].Value;
        Assert.Equal(bos, tokenizer.BosTokenId);
        Assert.Equal([eos], tokenizer.EosTokenIds);
        Assert.False(tokenizer.AddBosToken);
        Assert.Equal(id, tokenizer.TokenToId(token));
        Assert.True(tokenizer.IsSpecial(id));
        Assert.Null(tokenizer.TokenToId("no such token"));
        Assert.False(tokenizer.IsSpecial(tokenizer.VocabularySize - 1));
        Assert.False(tokenizer.IsSpecial(-1));
    }

    // Hugging Face splits the text at added tokens first and encodes the pieces apart (the metaspace
    // normalizer prepends "▁" to each piece).
    [Theory]
    [InlineData("bytelevel", "<|end|>")]
    [InlineData("metaspace", "</s>")]
    public void AddedTokensInTheTextSplitIt(string name, string token)
    {
        var tokenizer = Tokenizers[name].Value;
        var id = tokenizer.TokenToId(token)!.Value;
        int[] expected = [.. tokenizer.Encode("x = 1"), id, id, .. tokenizer.Encode(" y\n")];
        Assert.Equal(expected, tokenizer.Encode($"x = 1{token}{token} y\n"));
    }

    [Fact]
    public void SkipSpecialTokensLeavesThemOut()
    {
        var tokenizer = Tokenizers["bytelevel"].Value;
        var ids = tokenizer.Encode("before<|endoftext|>after");
        Assert.Contains(0, ids);
        Assert.Equal("before<|endoftext|>after", tokenizer.Decode(ids));
        Assert.Equal("beforeafter", tokenizer.Decode(ids, skipSpecialTokens: true));
        var stream = tokenizer.CreateStream(skipSpecialTokens: true);
        Assert.Equal("beforeafter", string.Concat(ids.Select(stream.Append)) + stream.Flush());
    }

    // <0xE4> <0xB8> <0xAD> is "中" in UTF-8: the stream holds the bytes until the character is complete.
    [Fact]
    public void ByteFallbackCharacterComesOutWhenComplete()
    {
        var tokenizer = Tokenizers["metaspace"].Value;
        int[] ids = [.. new[] { "<0xE4>", "<0xB8>", "<0xAD>" }.Select(t => tokenizer.TokenToId(t)!.Value)];
        var stream = tokenizer.CreateStream();
        Assert.Equal(["", "", "中"], ids.Select(stream.Append));
        Assert.Equal("", stream.Flush());
        Assert.Equal("中", tokenizer.Decode(ids));
    }

    // An incomplete character left at the end, or ended by a text token, is one U+FFFD (maximal subpart).
    [Fact]
    public void IncompleteCharacterBecomesReplacementCharacter()
    {
        var tokenizer = Tokenizers["metaspace"].Value;
        var e4 = tokenizer.TokenToId("<0xE4>")!.Value;
        var b8 = tokenizer.TokenToId("<0xB8>")!.Value;
        var s = tokenizer.TokenToId("</s>")!.Value;
        Assert.Equal("\uFFFD", tokenizer.Decode([e4, b8]));
        Assert.Equal("\uFFFD</s>", tokenizer.Decode([e4, b8, s]));
        var stream = tokenizer.CreateStream();
        Assert.Equal("", stream.Append(e4));
        Assert.Equal("\uFFFD</s>", stream.Append(s));
    }

    // GPT-2's table writes the unprintable bytes as U+0100 onwards, in byte order.
    [Fact]
    public void ByteLevelTokensStandForBytes()
    {
        var tokenizer = Tokenizers["bytelevel"].Value;
        var newline = tokenizer.TokenToId("Ċ")!.Value; // byte 0x0A is the 11th unprintable byte: U+0100 + 10
        var space = tokenizer.TokenToId("Ġ")!.Value;   // byte 0x20: U+0100 + 32
        Assert.Equal("\n", tokenizer.Decode([newline]));
        Assert.Equal(" \n ", tokenizer.Decode([space, newline, space]));
    }

    [Fact]
    public void TinyLlamaTokenizerMatchesItsGenerationReference()
    {
        using var tokenizer = Tokenizer.Load(RepositoryFiles.PathOf("models/tiny-llama/tokenizer.json"));
        using var document = JsonDocument.Parse(File.ReadAllText(RepositoryFiles.PathOf("models/tiny-llama/generation.json")));
        var runs = document.RootElement.GetProperty("runs").EnumerateArray().ToList();
        Assert.NotEmpty(runs);
        foreach (var run in runs)
        {
            var promptIds = run.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            var greedyIds = run.GetProperty("greedy_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            Assert.Equal(promptIds, tokenizer.Encode(run.GetProperty("prompt").GetString()!));
            Assert.Equal(run.GetProperty("greedy_text").GetString(), tokenizer.Decode(greedyIds));
        }
    }

    [Fact]
    public void MissingFileIsNamed()
    {
        var folder = Path.Combine(Path.GetTempPath(), $"ortsparse-no-tokenizer-{Guid.NewGuid():N}");
        var error = Assert.Throws<FileNotFoundException>(() => Tokenizer.Load(folder));
        Assert.Contains(folder, error.Message);
    }

    [Fact]
    public void InvalidJsonIsReported()
    {
        using var folder = new TemporaryFolder();
        var path = Path.Combine(folder.Path, "tokenizer.json");
        File.WriteAllText(path, "{ \"model\": ");
        var error = Assert.Throws<InvalidDataException>(() => Tokenizer.Load(path));
        Assert.Contains(path, error.Message);
        Assert.Contains("not valid JSON", error.Message);
    }

    [Fact]
    public void UnsupportedDecoderIsNamed()
    {
        using var folder = new TemporaryFolder();
        var tokenizer = JsonNode.Parse(File.ReadAllText(Path.Combine(FolderOf("bytelevel"), "tokenizer.json")))!;
        tokenizer["decoder"] = new JsonObject { ["type"] = "WordPiece", ["prefix"] = "##" };
        File.WriteAllText(Path.Combine(folder.Path, "tokenizer.json"), tokenizer.ToJsonString());
        var error = Assert.Throws<NotSupportedException>(() => Tokenizer.Load(folder.Path));
        Assert.Contains("'WordPiece'", error.Message);
    }

    [Fact]
    public void UnsupportedPreTokenizerOfASentencePieceBpeIsNamed()
    {
        using var folder = new TemporaryFolder();
        var tokenizer = JsonNode.Parse(File.ReadAllText(Path.Combine(FolderOf("metaspace"), "tokenizer.json")))!;
        tokenizer["pre_tokenizer"] = new JsonObject { ["type"] = "Metaspace", ["replacement"] = "▁" };
        File.WriteAllText(Path.Combine(folder.Path, "tokenizer.json"), tokenizer.ToJsonString());
        var error = Assert.Throws<NotSupportedException>(() => Tokenizer.Load(folder.Path));
        Assert.Contains("Metaspace", error.Message);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(1024)]
    public void DecodeNamesAnIdOutOfRange(int id)
    {
        var tokenizer = Tokenizers["bytelevel"].Value;
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Decode([5, id]));
        Assert.Contains($"{id}", error.Message);
        Assert.Contains($"{tokenizer.VocabularySize}", error.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.CreateStream().Append(id));
    }

    [Fact]
    public void NullTextIsRejected()
    {
        var tokenizer = Tokenizers["bytelevel"].Value;
        Assert.Throws<ArgumentNullException>(() => tokenizer.Encode((string)null!));
        Assert.Throws<ArgumentNullException>(() => tokenizer.Encode((IReadOnlyList<string>)null!));
        var error = Assert.Throws<ArgumentNullException>(() => tokenizer.Encode(["a", null!]));
        Assert.Contains("texts[1]", error.Message);
    }

    public static TheoryData<string> TokenizerNamesData() => new(TokenizerNames);

    private static string FolderOf(string name) => RepositoryFiles.PathOf($"tests/data/tokenizers/{name}");

    private sealed record Reference(int VocabSize, List<ReferenceCase> Cases);

    private sealed record ReferenceCase(string Text, int[] Ids, string Decoded);

    private sealed class TemporaryFolder : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("ortsparse-tokenizer-").FullName;

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
