using System.Text;
using System.Text.Unicode;

namespace OrtSparse.Runtime.Text;

/// <summary>
/// Turns the tokens of one sequence into text as they come: <see cref="Append"/> returns the text that
/// each token completes, holding back the bytes of a UTF-8 character that a later token may finish, so
/// a character split across tokens is never emitted as U+FFFD. The concatenation of every
/// <see cref="Append"/> result and <see cref="Flush"/> equals <see cref="Tokenizer.Decode"/> of all the ids.
/// Not thread-safe: use one stream per sequence. Created by <see cref="Tokenizer.CreateStream"/>.
/// </summary>
public sealed class TokenizerStream
{
    private readonly TokenDecoder _decoder;
    private readonly bool _skipSpecialTokens;
    private readonly StringBuilder _text = new();
    private byte[] _pending = new byte[64];
    private int _pendingLength;
    private int _stripLeft;

    internal TokenizerStream(TokenDecoder decoder, bool skipSpecialTokens)
    {
        _decoder = decoder;
        _skipSpecialTokens = skipSpecialTokens;
        _stripLeft = decoder.StripStart;
    }

    /// <summary>Adds one token; returns the text it completes ("" while a UTF-8 character is incomplete).</summary>
    /// <param name="id">The token id.</param>
    /// <exception cref="ArgumentOutOfRangeException">The id is negative or not below <see cref="Tokenizer.VocabularySize"/>.</exception>
    public string Append(int id)
    {
        _text.Clear();
        Write(id, _text);
        return _text.ToString();
    }

    /// <summary>Returns what is left: bytes of an incomplete UTF-8 character come out as U+FFFD.</summary>
    public string Flush()
    {
        _text.Clear();
        WriteRest(_text);
        return _text.ToString();
    }

    /// <summary>The core of <see cref="Append"/>: writes the text that <paramref name="id"/> completes to <paramref name="output"/>.</summary>
    internal void Write(int id, StringBuilder output)
    {
        _decoder.Vocabulary.CheckId(id);
        if (_skipSpecialTokens && _decoder.Vocabulary.IsSpecial(id))
        {
            return;
        }
        var start = output.Length;
        if (_decoder.EndsByteRun(id))
        {
            DecodePending(output, endOfRun: true);
        }
        AddPending(_decoder.BytesOf(id));
        DecodePending(output, endOfRun: false);
        Strip(output, start);
    }

    /// <summary>The core of <see cref="Flush"/>.</summary>
    internal void WriteRest(StringBuilder output)
    {
        var start = output.Length;
        DecodePending(output, endOfRun: true);
        Strip(output, start);
    }

    private void AddPending(ReadOnlySpan<byte> bytes)
    {
        if (_pendingLength + bytes.Length > _pending.Length)
        {
            Array.Resize(ref _pending, Math.Max(2 * _pending.Length, _pendingLength + bytes.Length));
        }
        bytes.CopyTo(_pending.AsSpan(_pendingLength));
        _pendingLength += bytes.Length;
    }

    // Invalid bytes become U+FFFD, one per maximal invalid subpart (as Rust's from_utf8_lossy, which Hugging
    // Face's ByteLevel decoder uses); an incomplete character at the end waits unless the run has ended.
    private void DecodePending(StringBuilder output, bool endOfRun)
    {
        if (_pendingLength == 0)
        {
            return;
        }
        // Each byte yields at most one UTF-16 unit (4-byte characters yield 2).
        var chars = _pendingLength <= 512 ? stackalloc char[_pendingLength] : new char[_pendingLength];
        Utf8.ToUtf16(_pending.AsSpan(0, _pendingLength), chars, out var read, out var written,
            replaceInvalidSequences: true, isFinalBlock: endOfRun);
        output.Append(chars[..written]);
        _pending.AsSpan(read, _pendingLength - read).CopyTo(_pending);
        _pendingLength -= read;
    }

    // The decoder's Strip removes leading characters of the whole text: only while nothing else has been emitted.
    private void Strip(StringBuilder output, int start)
    {
        var removed = 0;
        while (_stripLeft > 0 && start + removed < output.Length && output[start + removed] == _decoder.StripContent)
        {
            removed++;
            _stripLeft--;
        }
        if (start + removed < output.Length)
        {
            _stripLeft = 0;
        }
        output.Remove(start, removed);
    }
}
