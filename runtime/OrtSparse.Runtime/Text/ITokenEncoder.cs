namespace OrtSparse.Runtime.Text;

/// <summary>Turns texts into token ids without BOS or EOS; thread-safe.</summary>
internal interface ITokenEncoder : IDisposable
{
    /// <summary>Encodes every text of <paramref name="texts"/> (none null or empty).</summary>
    /// <param name="texts">The texts.</param>
    int[][] Encode(IReadOnlyList<string> texts);
}
