using System.Text.Json;
using TinyGrow.Abstractions;
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
        if (MisspeltEnvironment(Environment.GetEnvironmentVariables().Keys.Cast<string>()) is { Count: > 0 } misspelt)
            throw new InvalidConfigurationException(string.Join(Environment.NewLine, misspelt));
        var appSettingsPath = Path.Combine(appDirectory, "appsettings.json");
        var appSettings = ReadJson(appSettingsPath, optional: true, "settings file");
        var experimentPath = ExperimentPath(arguments, currentDirectory);
        var experiment = experimentPath is null ? JsonValues.Empty : ReadJson(experimentPath, optional: false, "experiment file");

        // Two sources rather than one merged dictionary, so that an error can say which file set a key.
        return builder
            .Add(new FileValues(appSettingsPath, Overlay(appSettings.Values, new Dictionary<string, string?>(), experiment.Arrays), appSettings.Nulls))
            .Add(new FileValues(experimentPath ?? "", experiment.Values, experiment.Nulls))
            .AddEnvironmentVariables(EnvironmentPrefix)
            .AddCommandLine(arguments.ToArray());
    }

    /// <summary>The values of a JSON file (as the JSON configuration provider reads them) and the
    /// paths of its arrays, empty ones included (<c>"Layers": []</c> leaves no value behind).</summary>
    public sealed record JsonValues(Dictionary<string, string?> Values, IReadOnlySet<string> Arrays)
    {
        /// <summary>The keys the file sets to JSON null (each also in <see cref="Values"/>, empty).</summary>
        public IReadOnlySet<string> Nulls { get; init; } = new HashSet<string>();

        /// <summary>No file.</summary>
        public static JsonValues Empty => new(new(StringComparer.OrdinalIgnoreCase), new HashSet<string>());
    }

    /// <summary>Values read from one file, named by <see cref="Path"/> in error messages.</summary>
    public sealed class FileValues(string path, IDictionary<string, string?> values, IReadOnlySet<string>? nulls = null) : ConfigurationProvider, IConfigurationSource
    {
        /// <summary>The file the values came from.</summary>
        public string Path { get; } = path;
        /// <summary>The keys the file sets to JSON null.</summary>
        public IReadOnlySet<string> Nulls { get; } = nulls ?? new HashSet<string>();
        /// <inheritdoc />
        public override void Load() => Data = new Dictionary<string, string?>(values, StringComparer.OrdinalIgnoreCase);
        /// <inheritdoc />
        public IConfigurationProvider Build(IConfigurationBuilder builder) => this;
    }

    /// <summary>Environment variables that look meant for TinyGrow but are not read: a prefix followed
    /// by another underscore (<c>TINYGROW__Training__BatchSize</c>: the configuration reads
    /// <c>TINYGROW_</c> and then "__" as the section separator, so nothing would read it, silently).</summary>
    public static IReadOnlyList<string> MisspeltEnvironment(IEnumerable<string> names) =>
        names.Where(n => n.StartsWith(EnvironmentPrefix + "_", StringComparison.OrdinalIgnoreCase))
             .Order(StringComparer.Ordinal)
             .Select(n => $"The environment variable {n} is not read: the prefix is {EnvironmentPrefix} with one underscore, so this looks like a mistake. " +
                          $"Rename it {EnvironmentPrefix}{n[EnvironmentPrefix.Length..].TrimStart('_')} (or unset it).")
             .ToList();

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

    /// <summary>Largest settings or experiment file read: 1 MiB (a shipped experiment is under 2 KB, a
    /// run's config.json under 10 KB). A larger file is refused before it is read.</summary>
    public const int MaxFileBytes = 1 << 20;

    /// <summary>The bytes of <paramref name="path"/>, a regular file of at most <see cref="MaxFileBytes"/>,
    /// without a UTF-8 byte order mark. A device (<c>/dev/zero</c> would be read until memory runs out),
    /// a FIFO (the open would wait for a writer forever), a socket, or a larger file is refused before
    /// it is opened; a file this user may not read is named as such.</summary>
    /// <exception cref="InvalidConfigurationException">Not a regular file, too large, or unreadable.</exception>
    public static byte[] ReadFileBytes(string path, string description)
    {
        var (kind, size) = FileKind.Of(path);
        if (kind is not null)
            throw new InvalidConfigurationException(
                $"The {description} {path} is {kind}, not a regular file: give a JSON file such as experiments/quick.json.");
        if (size > MaxFileBytes)
            throw new InvalidConfigurationException(
                $"The {description} {path} is {size:N0} bytes; at most {MaxFileBytes:N0} (1 MiB) is read: give the experiment's JSON settings only (docs/configuration.md).");
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
            // At most one byte past the limit, whatever the size said (the file may grow meanwhile).
            var buffer = new byte[MaxFileBytes + 1];
            var length = 0;
            for (int read; length < buffer.Length && (read = stream.Read(buffer, length, buffer.Length - length)) > 0;) length += read;
            if (length > MaxFileBytes)
                throw new InvalidConfigurationException(
                    $"The {description} {path} is more than {MaxFileBytes:N0} bytes (1 MiB), the most that is read: give the experiment's JSON settings only (docs/configuration.md).");
            var start = length >= 3 && buffer[0] == 0xEF && buffer[1] == 0xBB && buffer[2] == 0xBF ? 3 : 0; // UTF-8 byte order mark
            return buffer[start..length];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidConfigurationException(
                $"The {description} {path} cannot be read: {e.Message.TrimEnd('.')}. Check that this user may read it (ls -l {path}).", e);
        }
    }

    /// <summary>Reads <paramref name="path"/>; a syntax error names the file, line and column.</summary>
    /// <exception cref="InvalidConfigurationException">Missing (unless optional), not a regular file, too
    /// large (<see cref="MaxFileBytes"/>), unreadable or not JSON.</exception>
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
        var bytes = ReadFileBytes(path, description);
        try
        {
            // Parsed first by System.Text.Json itself: its errors carry the line and position, and
            // the document shows which keys are arrays and which are null. The values are then taken
            // from the JSON configuration provider (from the same bytes: the file is read once), so
            // that they are exactly what appsettings would give.
            var arrays = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            var nulls = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            using (var document = JsonDocument.Parse(bytes, JsonRules))
            {
                if (document.RootElement.ValueKind != JsonValueKind.Object)
                    throw new InvalidConfigurationException($"The {description} {path} must hold one JSON object ({{ \"Section\": {{ \"Key\": value }} }}), not {Article(document.RootElement.ValueKind)}. Fix the JSON.");
                CollectArrays(document.RootElement, "", arrays, nulls);
            }
            var values = new ConfigurationBuilder()
                .AddJsonStream(new MemoryStream(bytes))
                .Build()
                .AsEnumerable()
                .Where(kv => kv.Value is not null)
                .ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.OrdinalIgnoreCase);
            // A JSON null is kept as an empty value, so that StrictKeys sees the key (and refuses it for a typed option).
            foreach (var key in nulls) values.TryAdd(key, "");
            return new JsonValues(values, arrays) { Nulls = nulls };
        }
        catch (JsonException e)
        {
            // System.Text.Json counts lines and byte positions from 0.
            var reason = e.Message.Split(" LineNumber:", 2)[0].Split(" Path:", 2)[0].TrimEnd('.', ' ');
            throw new InvalidConfigurationException(
                $"The {description} {path} is not valid JSON: line {(e.LineNumber ?? 0) + 1}, position {(e.BytePositionInLine ?? 0) + 1}: {reason}. Fix the JSON.", e);
        }
        catch (Exception e) when (e is InvalidDataException or FormatException)
        {
            var detail = e.InnerException?.Message ?? e.Message;
            throw new InvalidConfigurationException($"The {description} {path} is not usable JSON: {detail} Fix the JSON.", e);
        }
    }

    static void CollectArrays(JsonElement element, string path, HashSet<string> arrays, HashSet<string> nulls)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                    CollectArrays(property.Value, path.Length == 0 ? property.Name : path + ConfigurationPath.KeyDelimiter + property.Name, arrays, nulls);
                break;
            case JsonValueKind.Array:
                arrays.Add(path);
                var index = 0;
                foreach (var item in element.EnumerateArray())
                    CollectArrays(item, path + ConfigurationPath.KeyDelimiter + index++, arrays, nulls);
                break;
            case JsonValueKind.Null:
                nulls.Add(path);
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
