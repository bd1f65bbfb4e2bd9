using System.ComponentModel;
using System.Globalization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.CommandLine;
using Microsoft.Extensions.Configuration.EnvironmentVariables;

namespace TinyGrow.Host.Configuration;

/// <summary>
/// Checks every key of a configuration against a <see cref="ConfigurationSchema"/> before anything
/// is bound: a key nothing reads (a misspelt section or key, a logging key no provider knows), a
/// list index that leaves a gap, a value that does not convert (a log level such as "Verbose"), each
/// is an error naming the full key, where it came from, and the nearest key that is read.
/// </summary>
/// <remarks>The binder's own <c>ErrorOnUnknownConfiguration</c> sees only the sections bound to option
/// classes, and only one unknown key at a time; logging is bound later, inside the host, where a bad
/// level is an unhandled exception.</remarks>
public static class StrictKeys
{
    /// <summary>All problems, one sentence each; empty when every key is read and every value converts.</summary>
    public static IReadOnlyList<string> Problems(IConfiguration configuration, ConfigurationSchema.Section? schema = null)
    {
        schema ??= ConfigurationSchema.TinyGrow;
        var problems = new List<string>();
        // list path ("Model:Layers") → the indices given for it, to find gaps
        var lists = new Dictionary<string, SortedDictionary<int, string>>(StringComparer.OrdinalIgnoreCase);
        // Only keys holding a value: the others are the sections above them (or an empty JSON array).
        foreach (var (key, value) in configuration.AsEnumerable().Where(kv => kv.Value is not null).OrderBy(kv => kv.Key, StringComparer.OrdinalIgnoreCase))
        {
            var problem = Check(schema, key, value!, lists, () => IsJsonNull(configuration, key));
            if (problem is not null) problems.Add($"{problem}{Origin(configuration, key)}.");
        }
        foreach (var (path, indices) in lists)
        {
            var (last, key) = indices.Last();
            var missing = Enumerable.Range(0, last + 1).FirstOrDefault(i => !indices.ContainsKey(i), -1);
            if (missing >= 0)
                problems.Add($"{key} is set, but {path}:{missing} is not: list elements are numbered 0, 1, 2… without gaps; " +
                             $"the next element is {path}:{missing}, and an experiment file's list replaces the whole list{Origin(configuration, key)}.");
        }
        return problems;
    }

    static string? Check(ConfigurationSchema.Section root, string key, string value, Dictionary<string, SortedDictionary<int, string>> lists, Func<bool> isJsonNull)
    {
        var segments = key.Split(ConfigurationPath.KeyDelimiter);
        ConfigurationSchema node = root;
        for (var i = 0; i < segments.Length; i++)
        {
            var segment = segments[i];
            var prefix = string.Join(ConfigurationPath.KeyDelimiter, segments[..i]);
            switch (node)
            {
                case ConfigurationSchema.Section section:
                    if (section.Child(segment) is not { } child)
                        return Unknown(key, prefix, section, segments[i..]);
                    node = child;
                    break;
                case ConfigurationSchema.List list:
                    if (!int.TryParse(segment, NumberStyles.None, CultureInfo.InvariantCulture, out var index) || index.ToString(CultureInfo.InvariantCulture) != segment)
                        return $"Unknown configuration key '{key}': {prefix} is a list, its elements are numbered 0, 1, 2…; the nearest known key is '{Join(prefix, Nearest(list, segments[i..]))}'";
                    if (!lists.TryGetValue(prefix, out var seen)) lists[prefix] = seen = new();
                    seen.TryAdd(index, key);
                    node = list.Element;
                    break;
                case ConfigurationSchema.Map map:
                    node = map.Entry;
                    break;
                case ConfigurationSchema.Value:
                    return $"Unknown configuration key '{key}': {prefix} is a single value, it has no keys below it; the nearest known key is '{prefix}'";
            }
        }
        return node switch
        {
            // JSON null or an empty value would bind to nothing and leave the default, silently.
            ConfigurationSchema.Value { Nullable: false } v when value.Length == 0 && v.Type != typeof(string) && v.Type != typeof(object) =>
                $"{key} {(isJsonNull() ? "= null: null is not a value here" : "is empty")}; {Expected(v.Type)}, or leave the key out to take its default",
            ConfigurationSchema.Value v => Convert(key, value, v.Type),
            _ when value.Length == 0 => null,
            // A list of values also takes one value, a list of one (`--Plugins:Folders=/path`);
            // TinyGrowSettings.Bind binds it so.
            ConfigurationSchema.List { Element: ConfigurationSchema.Value element } => Convert(key, value, element.Type),
            ConfigurationSchema.List => $"{key} = '{value}': {key} is a list, set its elements ({key}:0, {key}:1, …), not one value",
            _ => $"{key} = '{value}': {key} is a section, set the keys below it ({key}:<Key>), not one value",
        };
    }

    // The binder and the logging filters convert values with the type's TypeConverter; enums are
    // matched by name (case-insensitive) and must be one of the enum's values.
    static string? Convert(string key, string value, Type type)
    {
        if (type == typeof(string) || type == typeof(object) || value.Length == 0) return null;
        if (type.IsEnum)
        {
            var names = Enum.GetNames(type);
            if (Enum.TryParse(type, value, ignoreCase: true, out var parsed) && Enum.IsDefined(type, parsed!)) return null;
            return $"{key} = '{value}': use one of {string.Join(", ", names)}";
        }
        try
        {
            TypeDescriptor.GetConverter(type).ConvertFromInvariantString(value);
            return null;
        }
        catch (Exception e) when (e is FormatException or ArgumentException or NotSupportedException or OverflowException || e.InnerException is FormatException or OverflowException)
        {
            return $"{key} = '{value}': {Expected(type)}";
        }
    }

    static string Expected(Type type) => type switch
    {
        _ when type.IsEnum => $"use one of {string.Join(", ", Enum.GetNames(type))}",
        _ when type == typeof(bool) => "use true or false",
        _ when type == typeof(int) || type == typeof(long) || type == typeof(short) || type == typeof(byte) => $"use a whole number (at most {type.GetField("MaxValue")!.GetValue(null)})",
        _ when type == typeof(double) || type == typeof(float) || type == typeof(decimal) => "use a number such as 0.05 or 1e-3",
        _ when type == typeof(TimeSpan) => "use a duration such as 00:01:30",
        _ => $"it does not convert to {type.Name}",
    };

    // The nearest key when one is close (a typo, a truncation); otherwise the keys that exist there,
    // rather than a suggestion that has nothing to do with what was written.
    static string Unknown(string key, string prefix, ConfigurationSchema.Section section, string[] rest)
    {
        var head = rest[0];
        var known = Visible(section).ToList();
        var close = known.Any(n => Distance(n, head) <= Math.Max(2, head.Length / 2) ||
                                   n.Contains(head, StringComparison.OrdinalIgnoreCase) || head.Contains(n, StringComparison.OrdinalIgnoreCase));
        if (!close)
            return $"Unknown configuration key '{key}': nothing reads it, and no key {(prefix.Length == 0 ? "at the top level" : $"under {prefix}")} is close; " +
                   $"the known ones are {string.Join(", ", known)} (docs/configuration.md)";
        return $"Unknown configuration key '{key}': nothing reads it; the nearest known key is '{Join(prefix, Nearest(section, rest))}'";
    }

    static IEnumerable<string> Visible(ConfigurationSchema.Section section) => section.Names.Where(n => !ConfigurationSchema.IsInternal(n));

    // Greedy: the closest name at each level, keeping what already matches.
    static string Nearest(ConfigurationSchema node, ReadOnlySpan<string> segments)
    {
        if (segments.IsEmpty) return "";
        var head = segments[0];
        string name;
        ConfigurationSchema? next;
        switch (node)
        {
            case ConfigurationSchema.Section section when Visible(section).Any():
                // A key cut short ("Growth:Neurons") means the known key it begins, before any closer spelling.
                name = section.Child(head) is not null ? section.Spelling(head)
                     : Visible(section).Where(n => n.StartsWith(head, StringComparison.OrdinalIgnoreCase)).MinBy(n => n.Length)
                       ?? Visible(section).MinBy(n => Distance(n, head))!;
                next = section.Child(name);
                break;
            case ConfigurationSchema.List list:
                var isIndex = int.TryParse(head, NumberStyles.None, CultureInfo.InvariantCulture, out _);
                name = isIndex ? head : "0";
                next = list.Element;
                // "Model:Layers:Width": the index was left out, not misspelt.
                if (!isIndex) return Join(name, Nearest(next, segments));
                break;
            case ConfigurationSchema.Map map:
                name = head;
                next = map.Entry;
                break;
            default:
                return "";
        }
        return Join(name, Nearest(next!, segments[1..]));
    }

    static string Join(string prefix, string rest) =>
        prefix.Length == 0 ? rest : rest.Length == 0 ? prefix : prefix + ConfigurationPath.KeyDelimiter + rest;

    /// <summary>Edit distance, case-insensitive (configuration keys are).</summary>
    public static int Distance(string a, string b)
    {
        a = a.ToLowerInvariant();
        b = b.ToLowerInvariant();
        var previous = Enumerable.Range(0, b.Length + 1).ToArray();
        var current = new int[b.Length + 1];
        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
                current[j] = Math.Min(Math.Min(current[j - 1], previous[j]) + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }

    // Whether the key's value comes from a JSON null in a file (the highest-precedence source that has it).
    static bool IsJsonNull(IConfiguration configuration, string key) =>
        configuration is IConfigurationRoot root &&
        root.Providers.Reverse().FirstOrDefault(p => p.TryGet(key, out _)) is ConfigurationLayers.FileValues file && file.Nulls.Contains(key);

    /// <summary>Where <paramref name="key"/> was set: " (set in &lt;file&gt;)", " (set on the command line as --key)",
    /// " (set by the environment variable …)", or "" (unknown source).</summary>
    public static string Origin(IConfiguration configuration, string key)
    {
        if (configuration is not IConfigurationRoot root) return "";
        foreach (var provider in root.Providers.Reverse())
            if (provider.TryGet(key, out _))
                return provider switch
                {
                    CommandLineConfigurationProvider => $" (set on the command line as --{key})",
                    EnvironmentVariablesConfigurationProvider => $" (set by the environment variable {ConfigurationLayers.EnvironmentPrefix}{key.Replace(":", "__")})",
                    ConfigurationLayers.FileValues file => $" (set in {file.Path})",
                    _ => "",
                };
        return "";
    }
}
