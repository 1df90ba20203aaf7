namespace OrtSparse.Onnx;

/// <summary>
/// A file being written through a temporary file in the destination's folder. Until <see cref="Commit"/>
/// the destination is untouched; disposing without committing deletes the temporary file. Committing
/// renames it over the destination, which the file system does atomically, so readers see either the
/// old file or the complete new one.
/// </summary>
public sealed class PendingFile : IDisposable
{
    private readonly string _destination;
    private readonly string _tempPath;
    private readonly FileStream _stream;
    private bool _committed;

    /// <summary>Starts writing <paramref name="destination"/>: creates its folder and a temporary file beside it.</summary>
    /// <param name="destination">The file to create or replace on <see cref="Commit"/>.</param>
    public PendingFile(string destination)
    {
        ArgumentException.ThrowIfNullOrEmpty(destination);
        _destination = destination;
        var folder = Path.GetDirectoryName(destination)!;
        Directory.CreateDirectory(folder);
        _tempPath = Path.Combine(folder, $".{Path.GetFileName(destination)}.{Guid.NewGuid():N}.tmp");
        _stream = new FileStream(_tempPath, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1 << 20);
    }

    /// <summary>Where the content goes.</summary>
    public Stream Stream => _stream;

    /// <summary>Flushes the content to disk and moves it over the destination.</summary>
    public void Commit()
    {
        _stream.Flush(flushToDisk: true);
        _stream.Dispose();
        File.Move(_tempPath, _destination, overwrite: true);
        _committed = true;
    }

    /// <summary>Closes the temporary file and, unless committed, deletes it.</summary>
    public void Dispose()
    {
        _stream.Dispose();
        if (!_committed)
        {
            File.Delete(_tempPath);
        }
    }
}
