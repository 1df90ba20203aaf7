using System.Globalization;
using Onnx;

namespace OrtSparse.Onnx;

/// <summary>Where a tensor with data_location = EXTERNAL keeps its bytes: a file range.</summary>
/// <param name="TensorName">The tensor, for error messages.</param>
/// <param name="FilePath">The data file, resolved against the model's folder.</param>
/// <param name="Offset">Where the data starts in the file.</param>
/// <param name="Length">The stated data length, when the tensor states one.</param>
internal sealed record ExternalDataReference(string TensorName, string FilePath, long Offset, long? Length)
{
    public const string LocationKey = "location";
    public const string OffsetKey = "offset";
    public const string LengthKey = "length";

    public static bool IsExternal(TensorProto tensor) => tensor.DataLocation == TensorProto.Types.DataLocation.External;

    /// <summary>Reads the external_data entries of <paramref name="tensor"/>.</summary>
    /// <param name="tensor">A tensor with data_location = EXTERNAL.</param>
    /// <param name="baseDirectory">The model's folder, or null when the model was not loaded from a file.</param>
    public static ExternalDataReference Parse(TensorProto tensor, string? baseDirectory)
    {
        string? location = null;
        long offset = 0;
        long? length = null;
        foreach (var entry in tensor.ExternalData)
        {
            switch (entry.Key)
            {
                case LocationKey: location = entry.Value; break;
                case OffsetKey: offset = ParseByteCount(tensor, entry); break;
                case LengthKey: length = ParseByteCount(tensor, entry); break;
            }
        }
        if (string.IsNullOrEmpty(location))
        {
            throw new OnnxFormatException(baseDirectory, $"tensor '{tensor.Name}' is marked EXTERNAL but names no location");
        }
        if (baseDirectory is null)
        {
            throw new OnnxFormatException(null,
                $"tensor '{tensor.Name}' keeps its data in '{location}', but the model was not loaded from a file, so there is no folder to find it in");
        }
        var filePath = ResolveLocation(baseDirectory, location)
            ?? throw new OnnxFormatException(baseDirectory,
                $"tensor '{tensor.Name}': external data location '{location}' must be a relative path inside the model's folder");
        return new ExternalDataReference(tensor.Name, filePath, offset, length);
    }

    /// <summary>The full path of <paramref name="location"/>, or null unless it is relative and stays inside <paramref name="baseDirectory"/>.</summary>
    public static string? ResolveLocation(string baseDirectory, string location)
    {
        var root = Path.GetFullPath(baseDirectory);
        var prefix = Path.EndsInDirectorySeparator(root) ? root : root + Path.DirectorySeparatorChar;
        var fullPath = Path.GetFullPath(Path.Combine(root, location));
        var inside = !Path.IsPathRooted(location) && fullPath.StartsWith(prefix, StringComparison.Ordinal);
        return inside ? fullPath : null;
    }

    /// <summary>Checks that the file exists and holds the data; returns the number of bytes to read.</summary>
    /// <param name="expectedByteCount">The size the tensor's type and dims call for, or null when they do not fix one.</param>
    public long CheckRange(long? expectedByteCount)
    {
        var file = new FileInfo(FilePath);
        if (!file.Exists)
        {
            throw new OnnxFormatException(FilePath, $"the external data file of tensor '{TensorName}' does not exist");
        }
        if (Length is { } stated && expectedByteCount is { } expected && stated != expected)
        {
            throw new OnnxFormatException(FilePath,
                $"tensor '{TensorName}': external data length {stated} does not match the {expected} bytes its type and shape call for");
        }
        var count = Length ?? expectedByteCount ?? file.Length - Offset;
        if (Offset > file.Length || count > file.Length - Offset)
        {
            throw new OnnxFormatException(FilePath,
                $"tensor '{TensorName}': external data at offset {Offset} with length {count} runs past the end of the file ({file.Length} bytes)");
        }
        return count;
    }

    /// <summary>Reads the tensor's bytes into memory.</summary>
    public byte[] Read(long? expectedByteCount)
    {
        var count = CheckRange(expectedByteCount);
        if (count > Array.MaxLength)
        {
            throw new OnnxFormatException(FilePath, $"tensor '{TensorName}' has {count} bytes of data, too many for one array");
        }
        var bytes = new byte[count];
        using var handle = File.OpenHandle(FilePath);
        ReadExactly(handle, bytes, Offset);
        return bytes;
    }

    /// <summary>Copies the tensor's bytes to <paramref name="destination"/> in chunks, so that no tensor has to fit in memory.</summary>
    /// <returns>The number of bytes copied.</returns>
    public long CopyTo(Stream destination, long? expectedByteCount)
    {
        var count = CheckRange(expectedByteCount);
        var buffer = new byte[(int)Math.Min(count, 1 << 20)];
        using var handle = File.OpenHandle(FilePath);
        for (long done = 0; done < count;)
        {
            var chunk = buffer.AsSpan(0, (int)Math.Min(buffer.Length, count - done));
            ReadExactly(handle, chunk, Offset + done);
            destination.Write(chunk);
            done += chunk.Length;
        }
        return count;
    }

    private void ReadExactly(Microsoft.Win32.SafeHandles.SafeFileHandle handle, Span<byte> buffer, long fileOffset)
    {
        while (!buffer.IsEmpty)
        {
            var read = RandomAccess.Read(handle, buffer, fileOffset);
            if (read == 0)
            {
                throw new OnnxFormatException(FilePath, $"tensor '{TensorName}': the external data file ended early (it changed while being read)");
            }
            buffer = buffer[read..];
            fileOffset += read;
        }
    }

    private static long ParseByteCount(TensorProto tensor, StringStringEntryProto entry) =>
        long.TryParse(entry.Value, NumberStyles.None, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw new OnnxFormatException(null, $"tensor '{tensor.Name}': external data {entry.Key} '{entry.Value}' is not a byte count");
}
