using System.Globalization;
using System.Text;
using OrtSparse.Onnx;

namespace OrtSparse.Cli.Bench;

/// <summary>One row of the bench CSV: one kernel's step on one device and shape.</summary>
/// <param name="Device">cpu or cuda.</param>
/// <param name="Batch">B.</param>
/// <param name="Context">T.</param>
/// <param name="Method">A method, or the name of ONNX Runtime's kernel.</param>
/// <param name="Ms">Median milliseconds per step.</param>
/// <param name="BytesRead">Bytes of KV and state read per step, when known.</param>
/// <param name="Recall">Softmax mass of the attended keys, when known.</param>
/// <param name="RelativeError">‖o − o_dense‖ / ‖o_dense‖, when known.</param>
public sealed record BenchCsvRow(string Device, int Batch, int Context, string Method, double Ms, double? BytesRead, double? Recall, double? RelativeError);

/// <summary>
/// Appends bench results to a CSV file that several runs share (one per device, batch and context),
/// for plotting; a new file gets the header first. Unknown values are empty fields.
/// </summary>
public static class BenchCsv
{
    /// <summary>The first line of every bench CSV file.</summary>
    public const string Header = "device,batch,context,method,ms,bytes_read,recall,rel_error";

    /// <summary>Appends <paramref name="rows"/> to <paramref name="path"/> (created with the header if new); the file is replaced atomically.</summary>
    /// <param name="path">The CSV file.</param>
    /// <param name="rows">The rows, in order.</param>
    /// <exception cref="InvalidDataException">The file exists and does not start with <see cref="Header"/>.</exception>
    public static void Append(string path, IEnumerable<BenchCsvRow> rows)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(rows);
        var text = new StringBuilder();
        if (File.Exists(path))
        {
            var existing = File.ReadAllText(path);
            var first = existing.Split('\n')[0].TrimEnd('\r');
            if (first != Header)
            {
                throw new InvalidDataException($"{path} does not start with the bench CSV header '{Header}' (its first line is '{first}'); name a new file or one that --csv wrote");
            }
            text.Append(existing);
            if (!existing.EndsWith('\n'))
            {
                text.Append('\n');
            }
        }
        else
        {
            text.Append(Header).Append('\n');
        }
        foreach (var row in rows)
        {
            foreach (var field in new[] { row.Device, row.Method })
            {
                if (field.IndexOfAny([',', '"', '\n', '\r']) >= 0)
                {
                    throw new ArgumentException($"CSV field '{field}' must not contain a comma, quote or line break", nameof(rows));
                }
            }
            text.Append(CultureInfo.InvariantCulture, $"{row.Device},{row.Batch},{row.Context},{row.Method},{Number(row.Ms)},{Number(row.BytesRead)},{Number(row.Recall)},{Number(row.RelativeError)}\n");
        }
        using var file = new PendingFile(Path.GetFullPath(path));
        var bytes = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false).GetBytes(text.ToString());
        file.Stream.Write(bytes);
        file.Commit();
    }

    private static string Number(double? value) => value is { } v && double.IsFinite(v) ? v.ToString("R", CultureInfo.InvariantCulture) : "";
}
