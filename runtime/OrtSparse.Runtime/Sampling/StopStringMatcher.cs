namespace OrtSparse.Runtime.Sampling;

/// <summary>
/// Watches streamed text for stop strings that may span several decoded pieces. Text that could be the start of a
/// stop string is held back until the next pieces settle it; when a stop string completes, the text before it is
/// released and generation should stop (the stop string and anything after it are dropped). Matching is ordinal
/// (UTF-16 code units, case-sensitive). Not thread-safe: use one matcher per sequence.
/// </summary>
/// <remarks>
/// When several stop strings occur, the one that completes first in the text wins, as a streaming generator would
/// stop there; of those completing at the same place, the longest (so with "ab" and "abc", text "abc" stops at "ab"
/// and releases nothing after it; with "bc" and "abc" it stops at "abc").
/// </remarks>
public sealed class StopStringMatcher
{
    private readonly string[] _stops;
    private string _pending = "";

    /// <summary>A matcher for the given stop strings (none: every piece is released at once).</summary>
    /// <exception cref="ArgumentException">A stop string is empty.</exception>
    public StopStringMatcher(IReadOnlyList<string> stops)
    {
        ArgumentNullException.ThrowIfNull(stops);
        _stops = new string[stops.Count];
        for (var index = 0; index < stops.Count; index++)
        {
            var stop = stops[index] ?? throw new ArgumentNullException(nameof(stops), $"Stop string {index} is null.");
            if (stop.Length == 0)
            {
                throw new ArgumentException($"Stop string {index} is empty: it would match before any text.", nameof(stops));
            }
            _stops[index] = stop;
        }
    }

    /// <summary>True once a stop string has completed.</summary>
    public bool Stopped => MatchedStop is not null;

    /// <summary>The stop string that completed, or null.</summary>
    public string? MatchedStop { get; private set; }

    /// <summary>Adds the next decoded piece.</summary>
    /// <returns>
    /// <c>Emit</c>: the text now safe to show (possibly empty: held back as a possible stop-string start).
    /// <c>Stopped</c>: a stop string completed; <c>Emit</c> is the text before it and generation should end.
    /// </returns>
    /// <exception cref="InvalidOperationException">A stop string already completed.</exception>
    public (string Emit, bool Stopped) Append(string piece)
    {
        ArgumentNullException.ThrowIfNull(piece);
        if (Stopped)
        {
            throw new InvalidOperationException($"The stop string \"{MatchedStop}\" already completed; no text may follow.");
        }
        // Held-back text is the only place a match can start: everything released earlier was no stop-string prefix.
        var text = _pending + piece;
        var (start, stop) = FirstMatch(text);
        if (stop is not null)
        {
            MatchedStop = stop;
            _pending = "";
            return (text[..start], true);
        }
        var held = LongestStopPrefixSuffix(text);
        _pending = text[^held..];
        return (text[..^held], false);
    }

    /// <summary>Releases the text still held back: call once the sequence ends for another reason. Empty after a stop.</summary>
    public string Flush()
    {
        var held = _pending;
        _pending = "";
        return held;
    }

    // The stop string whose first occurrence ends earliest (the longest on a tie), with where it starts.
    private (int Start, string? Stop) FirstMatch(string text)
    {
        var bestEnd = int.MaxValue;
        (int Start, string? Stop) best = (-1, null);
        foreach (var stop in _stops)
        {
            var start = text.IndexOf(stop, StringComparison.Ordinal);
            var end = start + stop.Length;
            if (start >= 0 && (end < bestEnd || (end == bestEnd && stop.Length > best.Stop!.Length)))
            {
                bestEnd = end;
                best = (start, stop);
            }
        }
        return best;
    }

    // The length of the longest end of `text` that is a proper prefix of some stop string.
    private int LongestStopPrefixSuffix(string text)
    {
        var longest = 0;
        foreach (var stop in _stops)
        {
            for (var length = Math.Min(stop.Length - 1, text.Length); length > longest; length--)
            {
                if (text.AsSpan(text.Length - length).SequenceEqual(stop.AsSpan(0, length)))
                {
                    longest = length;
                    break;
                }
            }
        }
        return longest;
    }
}
