using System.Globalization;

namespace OrtSparse.Cli;

/// <summary>A usage error: the message says what is wrong with the command line.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>
/// Parsed arguments of one command: positional arguments, options with a value (<c>--name value</c>
/// or <c>--name=value</c>) and flags (<c>--name</c>). Each command declares which options and flags
/// it takes, so a misspelt option is an error rather than silently ignored.
/// </summary>
public sealed class CommandLine
{
    private readonly Dictionary<string, List<string>> _options = new(StringComparer.Ordinal);
    private readonly HashSet<string> _flags = new(StringComparer.Ordinal);

    /// <summary>The positional arguments, in order.</summary>
    public IReadOnlyList<string> Positional { get; }

    private CommandLine(List<string> positional) => Positional = positional;

    /// <summary>Parses <paramref name="args"/>; throws <see cref="UsageException"/> for unknown or incomplete options.</summary>
    /// <param name="args">The command's arguments (without the command name).</param>
    /// <param name="options">Names of options that take a value; aliases such as "-o" are allowed.</param>
    /// <param name="flags">Names of options without a value.</param>
    public static CommandLine Parse(IReadOnlyList<string> args, IEnumerable<string> options, IEnumerable<string> flags)
    {
        var optionNames = options.ToHashSet(StringComparer.Ordinal);
        var flagNames = flags.ToHashSet(StringComparer.Ordinal);
        var positional = new List<string>();
        var parsed = new CommandLine(positional);
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (arg == "--")
            {
                positional.AddRange(args.Skip(i + 1));
                break;
            }
            if (!arg.StartsWith('-') || arg.Length == 1 || double.TryParse(arg, NumberStyles.Float, CultureInfo.InvariantCulture, out _))
            {
                positional.Add(arg);
                continue;
            }
            var equals = arg.IndexOf('=');
            var name = equals > 0 ? arg[..equals] : arg;
            if (flagNames.Contains(name) && equals < 0)
            {
                parsed._flags.Add(name);
            }
            else if (optionNames.Contains(name))
            {
                string value;
                if (equals > 0)
                {
                    value = arg[(equals + 1)..];
                }
                else if (i + 1 < args.Count)
                {
                    value = args[++i];
                }
                else
                {
                    throw new UsageException($"option {name} needs a value");
                }
                if (!parsed._options.TryGetValue(name, out var values))
                {
                    parsed._options[name] = values = [];
                }
                values.Add(value);
            }
            else
            {
                var known = optionNames.Concat(flagNames).Where(n => n.StartsWith("--", StringComparison.Ordinal)).Order();
                throw new UsageException($"unknown option {name} (this command takes: {string.Join(", ", known)})");
            }
        }
        return parsed;
    }

    /// <summary>True when the flag was given.</summary>
    public bool Flag(string name) => _flags.Contains(name);

    /// <summary>The (last) value of an option, or null.</summary>
    public string? Option(params string[] names) =>
        names.Select(n => _options.GetValueOrDefault(n)?[^1]).FirstOrDefault(v => v is not null);

    /// <summary>Every value of an option given several times, in order.</summary>
    public IReadOnlyList<string> Options(string name) => _options.GetValueOrDefault(name) ?? [];

    /// <summary>The option's value as a double, or <paramref name="fallback"/>.</summary>
    public double Double(string name, double fallback) =>
        Option(name) is { } text
            ? double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && double.IsFinite(value)
                ? value
                : throw new UsageException($"{name} expects a number, got '{text}'")
            : fallback;

    /// <summary>The option's value as an integer within [min, max], or <paramref name="fallback"/>.</summary>
    public int Int(string name, int fallback, int min = int.MinValue, int max = int.MaxValue)
    {
        if (Option(name) is not { } text)
        {
            return fallback;
        }
        if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value))
        {
            throw new UsageException($"{name} expects an integer, got '{text}'");
        }
        return value >= min && value <= max ? value : throw new UsageException($"{name} ({value}) must be between {min} and {max}");
    }

    /// <summary>The names of all options that were given (for commands that take open-ended parameters).</summary>
    public IEnumerable<string> GivenOptions => _options.Keys;
}
