using Microsoft.Extensions.AI;
using OrtSparse.Runtime.Chat;
using OrtSparse.Runtime.Generation;

namespace OrtSparse.Cli.Commands;

/// <summary><c>ortsparse chat MODEL_DIR</c>: an interactive conversation through the runtime's <see cref="IChatClient"/>.</summary>
internal static class ChatCommand
{
    private static readonly string Usage = $"""
        usage: ortsparse chat MODEL_DIR [--system TEXT] [options]

        Talks with a patched model folder: type a message and press Enter; the reply streams back.
        /reset forgets the conversation, /exit (or end of input) quits.

        {GenerationOptions.Help}
        """;

    public static int Run(string[] args, TextReader stdin, TextWriter stdout, TextWriter stderr)
    {
        var line = CommandLine.Parse(args, ["--system", .. GenerationOptions.Names], ["--help", "-h"]);
        if (line.Flag("--help") || line.Flag("-h"))
        {
            stdout.WriteLine(Usage);
            return CliApp.Ok;
        }
        if (line.Positional.Count != 1)
        {
            throw new UsageException("chat needs one MODEL_DIR");
        }
        var settings = GenerationOptions.SettingsFrom(line, defaultMaxNew: 512);
        using var model = Model.Load(line.Positional[0], GenerationOptions.ModelOptionsFrom(line));
        using var client = new OrtSparseChatClient(model, settings);
        var system = line.Option("--system");
        var history = new List<ChatMessage>();
        void Reset()
        {
            history.Clear();
            if (system is not null)
            {
                history.Add(new ChatMessage(ChatRole.System, system));
            }
        }
        Reset();
        stderr.WriteLine($"chat with {model.Config.ModelFileName} on {DeviceOption.Name(model.Device)} ({string.Join(", ", model.Config.Layers.Select(l => l.Method).Distinct())}); /reset, /exit");
        while (true)
        {
            stderr.Write("> ");
            var message = stdin.ReadLine();
            if (message is null || message.Trim() == "/exit")
            {
                return CliApp.Ok;
            }
            if (message.Trim() == "/reset")
            {
                Reset();
                continue;
            }
            if (message.Trim().Length == 0)
            {
                continue;
            }
            history.Add(new ChatMessage(ChatRole.User, message));
            var reply = new System.Text.StringBuilder();
            foreach (var update in client.GetStreamingResponseAsync(history).ToBlockingEnumerable())
            {
                stdout.Write(update.Text);
                stdout.Flush();
                reply.Append(update.Text);
                if (update.Contents.OfType<UsageContent>().FirstOrDefault() is { } usage)
                {
                    stderr.WriteLine();
                    stderr.WriteLine($"-- {usage.Details.InputTokenCount} prompt tokens, {usage.Details.OutputTokenCount} generated ({update.FinishReason})");
                }
            }
            history.Add(new ChatMessage(ChatRole.Assistant, reply.ToString()));
        }
    }
}
