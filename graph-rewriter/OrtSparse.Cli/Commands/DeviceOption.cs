using OrtSparse.Runtime;

namespace OrtSparse.Cli.Commands;

/// <summary>Parses the --device option shared by the commands that run models.</summary>
internal static class DeviceOption
{
    public static ExecutionDevice Parse(string? text) => text switch
    {
        null or "cpu" => ExecutionDevice.Cpu,
        "cuda" => ExecutionDevice.Cuda,
        _ => throw new UsageException($"unknown device '{text}' (cpu, cuda)"),
    };

    /// <summary>The option's spelling of <paramref name="device"/>.</summary>
    public static string Name(ExecutionDevice device) => device == ExecutionDevice.Cuda ? "cuda" : "cpu";
}
