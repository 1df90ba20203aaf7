using System.Text;

namespace OrtSparse.Cli.Plot;

/// <summary>One data row of a <see cref="CsvTable"/>.</summary>
/// <param name="Line">The file line the row starts on (the header is line 1).</param>
/// <param name="Fields">One field per column.</param>
internal sealed record CsvRow(int Line, IReadOnlyList<string> Fields);

/// <summary>
/// A comma-separated file read whole: a header row of column names, then rows with as many fields.
/// Fields may be quoted ("a, b", kept as written; a doubled quote inside stands for one); unquoted
/// fields are trimmed; blank lines are skipped.
/// </summary>
internal sealed class CsvTable
{
    private CsvTable(string source, IReadOnlyList<string> columns, IReadOnlyList<CsvRow> rows) =>
        (Source, Columns, Rows) = (source, columns, rows);

    /// <summary>Where the table came from, for messages.</summary>
    public string Source { get; }

    /// <summary>The column names, in file order.</summary>
    public IReadOnlyList<string> Columns { get; }

    /// <summary>The data rows, in file order.</summary>
    public IReadOnlyList<CsvRow> Rows { get; }

    /// <summary>Reads <paramref name="path"/>; <see cref="FileNotFoundException"/> if it does not exist, <see cref="InvalidDataException"/> if it is not a table.</summary>
    public static CsvTable Load(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"{path}: no such file", path);
        }
        return Parse(File.ReadAllText(path), path);
    }

    /// <summary>Parses CSV <paramref name="text"/>; <paramref name="source"/> names it in messages.</summary>
    public static CsvTable Parse(string text, string source)
    {
        var records = Records(text, source).Where(r => r.Fields.Count > 1 || r.Fields[0].Length > 0).ToList();
        if (records.Count == 0)
        {
            throw new InvalidDataException($"{source} is empty: a CSV file needs a header row of column names");
        }
        var columns = records[0].Fields;
        if (columns.FirstOrDefault(c => c.Length == 0) is not null)
        {
            throw new InvalidDataException($"{source} line {records[0].Line}: column {columns.ToList().IndexOf("") + 1} of the header has no name");
        }
        if (columns.GroupBy(c => c, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1) is { } twice)
        {
            throw new InvalidDataException($"{source} line {records[0].Line}: the header names column '{twice.Key}' twice");
        }
        if (records.Skip(1).FirstOrDefault(r => r.Fields.Count != columns.Count) is { } ragged)
        {
            throw new InvalidDataException($"{source} line {ragged.Line} has {ragged.Fields.Count} field(s); the header has {columns.Count}");
        }
        return new CsvTable(source, columns, records.Skip(1).ToList());
    }

    /// <summary>The index of <paramref name="column"/>, or −1.</summary>
    public int IndexOf(string column) => Columns.ToList().IndexOf(column);

    private static IEnumerable<CsvRow> Records(string text, string source)
    {
        var line = 1;
        var start = 1;
        var fields = new List<string>();
        var field = new StringBuilder();
        var (inQuotes, wasQuoted) = (false, false);
        string Take()
        {
            var value = wasQuoted ? field.ToString() : field.ToString().Trim();
            wasQuoted = false;
            field.Clear();
            return value;
        }
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (inQuotes)
            {
                if (c == '"' && i + 1 < text.Length && text[i + 1] == '"')
                {
                    field.Append('"');
                    i++;
                }
                else if (c == '"')
                {
                    inQuotes = false;
                }
                else
                {
                    line += c == '\n' ? 1 : 0;
                    field.Append(c);
                }
            }
            else if (c == ',')
            {
                fields.Add(Take());
            }
            else if (c == '\n')
            {
                fields.Add(Take());
                yield return new CsvRow(start, fields);
                (fields, start) = ([], ++line);
            }
            else if (c == '"' && !wasQuoted && field.ToString().Trim().Length == 0)
            {
                (inQuotes, wasQuoted) = (true, true);
                field.Clear();
            }
            else if (!(wasQuoted && char.IsWhiteSpace(c)))
            {
                // After a closing quote only spaces may come before the comma; anything else is kept, as most readers do.
                field.Append(c);
            }
        }
        if (inQuotes)
        {
            throw new InvalidDataException($"{source} line {start}: a quoted field is not closed");
        }
        fields.Add(Take());
        yield return new CsvRow(start, fields);
    }
}
