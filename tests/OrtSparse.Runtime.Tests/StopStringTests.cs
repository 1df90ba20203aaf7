using OrtSparse.Runtime.Sampling;

namespace OrtSparse.Runtime.Tests;

public class StopStringTests
{
    /// <summary>
    /// The plain answer on the whole text: the stop string whose first occurrence ends earliest (longest on a tie),
    /// and the text before it; no stop: the whole text.
    /// </summary>
    private static (string Text, string? Stop) Reference(string text, string[] stops)
    {
        for (var end = 1; end <= text.Length; end++)
        {
            var stop = stops.Where(s => s.Length <= end && text.AsSpan(end - s.Length, s.Length).SequenceEqual(s))
                .OrderByDescending(s => s.Length).FirstOrDefault();
            if (stop is not null)
            {
                return (text[..(end - stop.Length)], stop);
            }
        }
        return (text, null);
    }

    // Feeds the pieces, checking after each that the released text never runs past what the reference allows.
    private static (string Text, bool Stopped, StopStringMatcher Matcher) Stream(string[] pieces, string[] stops)
    {
        var matcher = new StopStringMatcher(stops);
        var released = "";
        foreach (var piece in pieces)
        {
            var (emit, stopped) = matcher.Append(piece);
            released += emit;
            if (stopped)
            {
                return (released, true, matcher);
            }
        }
        return (released + matcher.Flush(), false, matcher);
    }

    [Theory]
    // Pieces are separated by ¦. No stop string: everything, piece by piece.
    [InlineData("Hello¦ world¦!", "", "Hello world!", null)]
    // A stop inside one piece.
    [InlineData("Hello¦<end>tail¦ more", "<end>", "Hello", "<end>")]
    // A stop spanning two, three and four pieces.
    [InlineData("abc</s¦>def", "</s>", "abc", "</s>")]
    [InlineData("The answer is 4<|e¦nd¦|>ignored", "<|end|>", "The answer is 4", "<|end|>")]
    [InlineData("x<¦/¦s¦>y", "</s>", "x", "</s>")]
    // A stop at the very start, whole or split.
    [InlineData("STOP now", "STOP", "", "STOP")]
    [InlineData("S¦T¦OP now", "STOP", "", "STOP")]
    // A false start released when the next piece settles it, and at the end by Flush.
    [InlineData("a <e¦x> b", "<end>", "a <ex> b", null)]
    [InlineData("total: <en", "<end>", "total: <en", null)]
    [InlineData("<¦<¦<end>", "<end>", "<<", "<end>")]
    [InlineData("abab¦ac", "abac", "ab", "abac")]
    [InlineData("aaa¦ab", "aab", "aa", "aab")]
    // Overlapping stops: the earliest end wins, the longest on a tie.
    [InlineData("xab¦cd", "ab,abc", "x", "ab")]
    [InlineData("xa¦bcd", "abc,bc", "x", "abc")]
    [InlineData("x¦ab¦c", "xabc,ab", "x", "ab")]
    [InlineData("xabcd", "xabc,ab", "x", "ab")]
    [InlineData("</s>", "</s>,s>", "", "</s>")]
    [InlineData("one two¦ three", "three,two ", "one ", "two ")]
    // Empty pieces and non-ASCII text.
    [InlineData("¦¦héllo¦ wö¦rld.¦", "wörld", "héllo ", "wörld")]
    public void StreamedTextStopsWhereTheReferenceFindsTheFirstStop(string piecesJoined, string stopsJoined, string expectedText, string? expectedStop)
    {
        var pieces = piecesJoined.Split('¦');
        var stops = stopsJoined.Length == 0 ? [] : stopsJoined.Split(',');
        Assert.Equal((expectedText, expectedStop), Reference(string.Concat(pieces), stops));

        var (text, stopped, matcher) = Stream(pieces, stops);
        Assert.Equal(expectedText, text);
        Assert.Equal(expectedStop is not null, stopped);
        Assert.Equal(expectedStop, matcher.MatchedStop);
        Assert.Equal(stopped, matcher.Stopped);
    }

    [Theory]
    [InlineData("<end>", "abc<en", "abc", "<en")]
    [InlineData("<end>", "abc<x", "abc<x", "")]
    [InlineData("<end>,d>", "abc<en", "abc", "<en")]
    [InlineData("</s>,<|eot|>", "hi <|eo", "hi ", "<|eo")]
    [InlineData("ab", "aaa", "aa", "a")]
    public void OnlyAPossibleStopStartIsHeldBackAndFlushReleasesIt(string stopsJoined, string piece, string emitted, string held)
    {
        var matcher = new StopStringMatcher(stopsJoined.Split(','));
        Assert.Equal((emitted, false), matcher.Append(piece));
        Assert.Equal(held, matcher.Flush());
        Assert.Equal("", matcher.Flush());
    }

    [Fact]
    public void RandomPieceSplitsAgreeWithTheReference()
    {
        var random = new Random(3);
        // "s>" ends "</s>" (a tie: the longer wins); "im_" lies inside "<|im_end|>" (it ends first and wins).
        string[] stops = ["</s>", "<|im_end|>", "\n\nUser:", "ss", "s>", "im_"];
        const string Alphabet = "<>/|s\nUser:im_end ab";
        for (var trial = 0; trial < 2000; trial++)
        {
            var text = new string(Enumerable.Range(0, random.Next(0, 40)).Select(_ => Alphabet[random.Next(Alphabet.Length)]).ToArray());
            var pieces = new List<string>();
            for (var start = 0; start < text.Length;)
            {
                var length = Math.Min(random.Next(0, 5), text.Length - start);
                pieces.Add(text.Substring(start, length));
                start += length;
            }
            var (expectedText, expectedStop) = Reference(text, stops);
            var (streamed, _, matcher) = Stream([.. pieces], stops);
            Assert.True(expectedText == streamed && expectedStop == matcher.MatchedStop,
                $"text {text.ReplaceLineEndings("\\n")} split as [{string.Join("][", pieces)}]: expected \"{expectedText}\" / {expectedStop}, got \"{streamed}\" / {matcher.MatchedStop}");
        }
    }

    [Fact]
    public void AfterAStopFlushIsEmptyAndAppendIsAnError()
    {
        var matcher = new StopStringMatcher(["END"]);
        Assert.Equal(("ok ", true), matcher.Append("ok ENDafter"));
        Assert.Equal("", matcher.Flush());
        var error = Assert.Throws<InvalidOperationException>(() => matcher.Append("more"));
        Assert.Contains("\"END\" already completed", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AnEmptyStopStringIsAnError()
    {
        var error = Assert.Throws<ArgumentException>(() => new StopStringMatcher(["</s>", ""]));
        Assert.Equal("stops", error.ParamName);
        Assert.StartsWith("Stop string 1 is empty", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ANullStopStringIsAnError() =>
        Assert.Throws<ArgumentNullException>(() => new StopStringMatcher(["</s>", null!]));
}
