using System.Globalization;
using System.Text;
using OrtSparse.GraphRewriter;

namespace OrtSparse.Cli.Commands;

/// <summary>
/// The options that choose the method of each layer, shared by <c>patch</c> and <c>inspect</c>:
/// <c>--method</c>, <c>--dense-layers</c>, <c>--layer-method</c> and the method parameters
/// (<c>--NAME value</c>).
/// </summary>
internal static class MethodOptions
{
    private static readonly IReadOnlyList<MethodParameter> AllParameters =
        MethodCatalog.All.SelectMany(m => m.Parameters).DistinctBy(p => p.Name).ToList();

    /// <summary>The option names, each parameter under both spellings (<c>--page_size</c>, <c>--page-size</c>).</summary>
    public static IEnumerable<string> Names =>
        ["--method", "--dense-layers", "--layer-method", .. AllParameters.SelectMany(p => new[] { $"--{p.Name}", Dashed(p) }).Distinct()];

    /// <summary>The options' help, with every method and its parameters.</summary>
    public static string Help()
    {
        var text = new StringBuilder("""
              --method M           method of every layer that --dense-layers and --layer-method do not name (default dense)
              --dense-layers L     keep layers L dense: comma-separated N, N-M or N- (e.g. 0,1 or 0-1)
              --layer-method SPEC  methods of particular layers: comma-separated LAYERS=METHOD[:PARAMETER=VALUE...],
                                   e.g. 0-1=dense,2-=quest:budget=0.125:page_size=8 (ranges may not overlap)
              --PARAMETER value    a method parameter (below), for every layer whose method takes it; a
                                   :PARAMETER=VALUE of a --layer-method entry overrides it for that entry's layers
            Layers count from 0: layer L is the L-th attention site that can be replaced, in graph order
            ('ortsparse inspect MODEL' lists them).

            methods and their parameters (docs/ops.md):

            """);
        foreach (var method in MethodCatalog.All)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"  {method.Name,-10} {method.Summary}");
            foreach (var parameter in method.Parameters)
            {
                var fallback = parameter.Default is { } d ? d.ToString(CultureInfo.InvariantCulture) : "model-dependent";
                text.AppendLine(CultureInfo.InvariantCulture, $"      --{parameter.Name,-12} {parameter.Help} (default {fallback})");
            }
        }
        return text.ToString();
    }

    /// <summary>The methods the options give: <see cref="PatchOptions.Method"/> and <see cref="PatchOptions.LayerMethods"/>.</summary>
    /// <exception cref="UsageException">An option is malformed or names an unknown method or parameter; the message quotes the bad part.</exception>
    public static (MethodConfig Method, IReadOnlyList<LayerMethod> LayerMethods) Parse(CommandLine line)
    {
        var shared = SharedParameters(line);
        var defaultMethod = line.Option("--method") ?? "dense";
        var entries = line.Options("--dense-layers").SelectMany(Parts)
            .Select(part => (Layers: Range(part, $"--dense-layers '{part}'"), Method: "dense", Own: new Dictionary<string, double>()))
            .Concat(line.Options("--layer-method").SelectMany(Parts).Select(ParseEntry))
            .ToList();
        try
        {
            var inUse = entries.Select(e => e.Method).Prepend(defaultMethod).Distinct().ToList();
            foreach (var name in shared.Keys.Where(n => !inUse.Any(m => Takes(m, n))))
            {
                if (inUse.Count == 1)
                {
                    new MethodConfig { Method = defaultMethod, Parameters = shared }.Validate(); // names the method and what it takes
                }
                throw new UsageException($"--{name}: none of the methods in use ({string.Join(", ", inUse)}) takes it");
            }
            MethodConfig Config(string method, IReadOnlyDictionary<string, double> own) => new()
            {
                Method = method,
                Parameters = shared.Where(p => Takes(method, p.Key)).Concat(own).GroupBy(p => p.Key).ToDictionary(g => g.Key, g => g.Last().Value),
            };
            var options = new PatchOptions
            {
                Method = Config(defaultMethod, new Dictionary<string, double>()),
                LayerMethods = entries.Select(e => new LayerMethod(e.Layers, Config(e.Method, e.Own))).ToList(),
            };
            options.Validate();
            return (options.Method, options.LayerMethods);
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message);
        }
    }

    private static bool Takes(string method, string parameter) => MethodCatalog.Get(method).Parameters.Any(p => p.Name == parameter);

    private static string Dashed(MethodParameter parameter) => $"--{parameter.Name.Replace('_', '-')}";

    /// <summary>The parameters given as options, by name.</summary>
    /// <summary>The method parameters given as --NAME value, by parameter name.</summary>
    internal static Dictionary<string, double> SharedParameters(CommandLine line)
    {
        var parameters = new Dictionary<string, double>();
        foreach (var parameter in AllParameters)
        {
            var flag = line.Option($"--{parameter.Name}") is null ? Dashed(parameter) : $"--{parameter.Name}";
            if (line.Option(flag) is not null)
            {
                parameters[parameter.Name] = line.Double(flag, double.NaN);
            }
        }
        return parameters;
    }

    private static string[] Parts(string value) => value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static LayerRange Range(string text, string context)
    {
        try
        {
            return LayerRange.Parse(text);
        }
        catch (FormatException e)
        {
            throw new UsageException($"{context}: {e.Message}");
        }
    }

    /// <summary>One <c>LAYERS=METHOD[:PARAMETER=VALUE...]</c> entry of --layer-method.</summary>
    private static (LayerRange Layers, string Method, Dictionary<string, double> Own) ParseEntry(string entry)
    {
        var context = $"--layer-method '{entry}'";
        var equals = entry.IndexOf('=');
        if (equals < 0)
        {
            throw new UsageException($"{context}: no '=METHOD' (write LAYERS=METHOD[:PARAMETER=VALUE...], e.g. 0-1=dense)");
        }
        var layers = Range(entry[..equals], context);
        var parts = entry[(equals + 1)..].Split(':');
        var method = parts[0];
        if (MethodCatalog.All.All(m => m.Name != method))
        {
            throw new UsageException($"{context}: unknown method '{method}' (available: {string.Join(", ", MethodCatalog.All.Select(m => m.Name))})");
        }
        var own = new Dictionary<string, double>();
        foreach (var part in parts.Skip(1))
        {
            var split = part.IndexOf('=');
            if (split <= 0)
            {
                throw new UsageException($"{context}: '{part}' is not PARAMETER=VALUE");
            }
            var (name, text) = (part[..split].Replace('-', '_'), part[(split + 1)..]);
            own[name] = double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && double.IsFinite(value)
                ? value
                : throw new UsageException($"{context}: {name} expects a number, got '{text}'");
        }
        return (layers, method, own);
    }
}
