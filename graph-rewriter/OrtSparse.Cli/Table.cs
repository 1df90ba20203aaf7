namespace OrtSparse.Cli;

/// <summary>Writes left-aligned text tables for people.</summary>
internal static class Table
{
    public static void Write(TextWriter writer, IReadOnlyList<string> header, IReadOnlyList<string[]> rows)
    {
        var widths = header.Select((h, i) => rows.Select(r => r[i].Length).Append(h.Length).Max()).ToArray();
        string Format(IReadOnlyList<string> cells) =>
            string.Join("  ", cells.Select((c, i) => i == cells.Count - 1 ? c : c.PadRight(widths[i]))).TrimEnd();
        writer.WriteLine(Format(header));
        writer.WriteLine(Format(widths.Select(w => new string('-', w)).ToArray()));
        foreach (var row in rows)
        {
            writer.WriteLine(Format(row));
        }
    }
}
