using Google.Protobuf;

namespace OrtSparse.Onnx;

/// <summary>Reads one protobuf message from a file, turning every failure into an <see cref="OnnxFormatException"/>.</summary>
internal static class ProtobufFile
{
    /// <param name="path">The file.</param>
    /// <param name="parser">The message type's parser.</param>
    /// <param name="kind">What the file should hold, for messages: "an ONNX model".</param>
    public static T Read<T>(string path, MessageParser<T> parser, string kind) where T : IMessage<T>
    {
        var file = new FileInfo(Path.GetFullPath(path));
        if (!file.Exists)
        {
            throw new OnnxFormatException(path, Directory.Exists(file.FullName) ? "is a folder, not a file" : "the file does not exist");
        }
        if (file.Length == 0)
        {
            throw new OnnxFormatException(path, $"not {kind}: the file is empty");
        }
        if (file.Length > int.MaxValue)
        {
            throw new OnnxFormatException(path,
                $"the file has {file.Length} bytes, but protobuf messages are limited to 2 GiB (large weights belong in external data)");
        }
        try
        {
            using var stream = new FileStream(file.FullName, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16, FileOptions.SequentialScan);
            return parser.ParseFrom(stream);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new OnnxFormatException(path, $"not {kind}: {e.Message}", e);
        }
    }
}
