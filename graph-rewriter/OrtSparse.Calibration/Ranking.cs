namespace OrtSparse.Calibration;

/// <summary>Top-ℓ selection with the op's tie rule: the lower index first.</summary>
internal static class Ranking
{
    /// <summary>Fills <paramref name="top"/> with the indices of the largest scores, best first.</summary>
    public static void Top(ReadOnlySpan<float> scores, Span<int> top)
    {
        var filled = 0;
        for (var i = 0; i < scores.Length; i++)
        {
            if (filled == top.Length && !(scores[i] > scores[top[filled - 1]]))
            {
                continue;
            }
            // Insertion sort into the kept prefix; a strict comparison keeps earlier indices ahead on ties.
            var position = Math.Min(filled, top.Length - 1);
            while (position > 0 && scores[i] > scores[top[position - 1]])
            {
                top[position] = top[position - 1];
                position--;
            }
            top[position] = i;
            filled = Math.Min(filled + 1, top.Length);
        }
    }

    /// <summary>The target mass of the clusters that <paramref name="scores"/> ranks in its top <paramref name="count"/>.</summary>
    public static double CapturedMass(ReadOnlySpan<float> scores, ReadOnlySpan<float> target, int count)
    {
        Span<int> top = count <= 256 ? stackalloc int[count] : new int[count];
        Top(scores, top);
        var mass = 0.0;
        foreach (var cluster in top)
        {
            mass += target[cluster];
        }
        return mass;
    }
}
