using System.Diagnostics;

namespace OrtSparse.Cli;

/// <summary>A one-line progress bar on a terminal (redrawn in place), or plain lines when output is redirected.</summary>
internal sealed class ProgressBar(TextWriter writer, string label, int total)
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly bool _interactive = !Console.IsErrorRedirected;
    private int _lastPercent = -1;

    /// <summary>Shows <paramref name="done"/> of the total with an optional note.</summary>
    public void Report(int done, string note = "")
    {
        var percent = total == 0 ? 100 : (int)(100L * done / total);
        if (!_interactive && percent / 10 == _lastPercent / 10 && done != total)
        {
            return; // redirected: one line per 10%
        }
        _lastPercent = percent;
        const int width = 30;
        var filled = width * percent / 100;
        var line = $"{label} [{new string('#', filled)}{new string('.', width - filled)}] {done}/{total} {_clock.Elapsed:mm\\:ss} {note}";
        writer.Write(_interactive ? $"\r{line.PadRight(Console.IsErrorRedirected ? 0 : 100)}" : line + Environment.NewLine);
        if (_interactive && done == total)
        {
            writer.WriteLine();
        }
    }
}
