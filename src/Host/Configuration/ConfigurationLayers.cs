using System.Text.Json;
using Microsoft.Extensions.Configuration;

namespace TinyGrow.Host.Configuration;

/// <summary>
/// The configuration sources, lowest to highest precedence: <c>appsettings.json</c> beside the
/// executable, the experiment file (<c>--experiment &lt;path&gt;</c>), environment variables
/// prefixed <c>TINYGROW_</c> (<c>TINYGROW_Training__Epochs=3</c>), command-line overrides
/// (<c>--Training:Epochs=3</c>).
/// </summary>
/// <remarks>
/// The two JSON files are read once, without file watchers (hosts started by tests would exhaust
/// the inotify limit, and a run must not change its configuration halfway). Stacked as they are,
/// configuration sources merge arrays element by element: an experiment with one hidden layer would
/// silently inherit the second layer of appsettings.json, and an empty array (<c>"Layers": []</c>)
/// would change nothing. So every array the experiment file gives (empty ones included) is removed
/// from appsettings' values first: it replaces the whole array below it. Environment and command
/// line still override single elements (<c>--Model:Layers:0:Width=8</c>).
/// </remarks>
public static class ConfigurationLayers
{
    /// <summary>Prefix of the environment variables read as configuration.</summary>
    public const string EnvironmentPrefix = "TINYGROW_";

    /// <summary>Key of the experiment file path (command line or environment).</summary>
    public const string ExperimentKey = "Experiment";

    /// <summary>Adds the TinyGrow sources to <paramref name="builder"/>.</summary>
    /// <param name="builder">The host's configuration manager (or any builder).</param>
    /// <param name="appDirectory">Folder of the executable, holding appsettings.json.</param>
    /// <param name="arguments">Command-line configuration arguments (the verb already removed).</param>
    /// <param name="currentDirectory">Against which a relative experiment path is resolved.</param>
    /// <exception cref="InvalidConfigurationException">Missing or unreadable experiment file, unreadable appsettings.json.</exception>
    public static IConfigurationBuilder AddTinyGrowLayers(
        this IConfigurationBuilder builder, string appDirectory, IReadOnlyList<string> arguments, string currentDirectory)
    {
        var appSettingsPath = Path.Combine(appDirectory, "appsettings.json");
        var appSettings = ReadJson(appSettingsPath, optional: true, "settings file");
        var experimentPath = ExperimentPath(arguments, currentDirectory);
        var experiment = experimentPath is null ? JsonValues.Empty : ReadJson(experimentPath, optional: false, "experiment file");

        // Two sources rather than one merged dictionary, so that an error can say which file set a key.
        return builder
            .Add(new FileValues(appSettingsPath, Overlay(appSettings.Values, new Dictionary<string, string?>(), experiment.Arrays)))
            .Add(new FileValues(experimentPath ?? "", experiment.Values))
            .AddEnvironmentVariables(EnvironmentPrefix)
            .AddCommandLine(arguments.ToArray());
    }

    /// <summary>The values of a JSON file (as the JSON configuration provider reads them) and the
    /// paths of its arrays, empty ones included (<c>"Layers": []</c> leaves no value behind).</summary>
    public sealed record JsonValues(Dictionary<string, string?> Values, IReadOnlySet<string> Arrays)
    {
        /// <summary>No file.</summary>
        public static JsonValues Empty => new(new(StringComparer.OrdinalIgnoreCase), new HashSet<string>());
    }

    /// <summary>Values read from one file, named by <see cref="Path"/> in error messages.</summary>
    public sealed class FileValues(string path, IDictionary<string, string?> values) : ConfigurationProvider, IConfigurationSource
    {
        /// <summary>The file the values came from.</summary>
        public string Path { get; } = path;
        /// <inheritdoc />
        public override void Load() => Data = new Dictionary<string, string?>(values, StringComparer.OrdinalIgnoreCase);
        /// <inheritdoc />
        public IConfigurationProvider Build(IConfigurationBuilder builder) => this;
    }

    /// <summary>The absolute experiment path from the command line (or <c>TINYGROW_Experiment</c>), or null.</summary>
    public static string? ExperimentPath(IReadOnlyList<string> arguments, string currentDirectory)
    {
        var given = new ConfigurationBuilder()
            .AddEnvironmentVariables(EnvironmentPrefix)
            .AddCommandLine(arguments.ToArray())
            .Build()[ExperimentKey];
        return string.IsNullOrWhiteSpace(given) ? null : Path.GetFullPath(given, currentDirectory);
    }

    static readonly JsonDocumentOptions JsonRules = new() { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true };

    static string Article(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => kind.ToString().ToLowerInvariant(),
    };

    /// <summary>Reads <paramref name="path"/>; a syntax error names the file, line and column.</summary>
    /// <exception cref="InvalidConfigurationException">Missing (unless optional), unreadable or not JSON.</exception>
    public static JsonValues ReadJson(string path, bool optional, string description)
    {
        if (!File.Exists(path))
        {
            if (optional) return JsonValues.Empty;
            if (Directory.Exists(path))
                throw new InvalidConfigurationException($"The {description} {path} is a folder, not a file: give a JSON file such as experiments/quick.json.");
            throw new InvalidConfigurationException(
                $"The {description} {path} does not exist (--experiment; a relative path is resolved against the current directory). Check the path.");
        }
        try
        {
            // Parsed first by System.Text.Json itself: its errors carry the line and position, and
            // the document shows which keys are arrays. The values are then taken from the JSON
            // configuration provider, so that they are exactly what appsettings would give.
            var arrays = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            using (var document = JsonDocument.Parse(File.ReadAllBytes(path), JsonRules))
            {
                if (document.RootElement.ValueKind != JsonValueKind.Object)
                    throw new InvalidConfigurationException($"The {description} {path} must hold one JSON object ({{ \"Section\": {{ \"Key\": value }} }}), not {Article(document.RootElement.ValueKind)}. Fix the JSON.");
                CollectArrays(document.RootElement, "", arrays);
            }
            var values = new ConfigurationBuilder()
                .AddJsonFile(path, optional: false, reloadOnChange: false)
                .Build()
                .AsEnumerable()
                .Where(kv => kv.Value is not null)
                .ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.OrdinalIgnoreCase);
            return new JsonValues(values, arrays);
        }
        catch (JsonException e)
        {
            // System.Text.Json counts lines and byte positions from 0.
            var reason = e.Message.Split(" LineNumber:", 2)[0].Split(" Path:", 2)[0].TrimEnd('.', ' ');
            throw new InvalidConfigurationException(
                $"The {description} {path} is not valid JSON: line {(e.LineNumber ?? 0) + 1}, position {(e.BytePositionInLine ?? 0) + 1}: {reason}. Fix the JSON.", e);
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or IOException or UnauthorizedAccessException)
        {
            var detail = e.InnerException?.Message ?? e.Message;
            throw new InvalidConfigurationException($"The {description} {path} cannot be read: {detail} Fix the JSON.", e);
        }
    }

    static void CollectArrays(JsonElement element, string path, HashSet<string> arrays)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                    CollectArrays(property.Value, path.Length == 0 ? property.Name : path + ConfigurationPath.KeyDelimiter + property.Name, arrays);
                break;
            case JsonValueKind.Array:
                arrays.Add(path);
                var index = 0;
                foreach (var item in element.EnumerateArray())
                    CollectArrays(item, path + ConfigurationPath.KeyDelimiter + index++, arrays);
                break;
        }
    }

    /// <summary><paramref name="upper"/> over <paramref name="lower"/>; an array in <paramref name="upper"/>
    /// replaces the array of the same key in <paramref name="lower"/> as a whole. <paramref name="upperArrays"/>
    /// names arrays of <paramref name="upper"/> that may hold no value (an empty JSON array).</summary>
    public static Dictionary<string, string?> Overlay(
        IReadOnlyDictionary<string, string?> lower, IReadOnlyDictionary<string, string?> upper, IEnumerable<string>? upperArrays = null)
    {
        var replacedArrays = upper.Keys.SelectMany(ArrayPrefixes)
            .Concat((upperArrays ?? []).Select(a => a + ConfigurationPath.KeyDelimiter))
            .ToHashSet(StringComparer.OrdinalIgnoreCase);
        var merged = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var (key, value) in lower)
            if (!ArrayPrefixes(key).Any(replacedArrays.Contains))
                merged[key] = value;
        foreach (var (key, value) in upper)
            merged[key] = value;
        return merged;
    }

    // "Model:Layers:0:Width" → "Model:Layers:" (every prefix that is followed by an index).
    static IEnumerable<string> ArrayPrefixes(string key)
    {
        var parts = key.Split(ConfigurationPath.KeyDelimiter);
        for (var i = 1; i < parts.Length; i++)
            if (int.TryParse(parts[i], out _))
                yield return string.Join(ConfigurationPath.KeyDelimiter, parts[..i]) + ConfigurationPath.KeyDelimiter;
    }
}
