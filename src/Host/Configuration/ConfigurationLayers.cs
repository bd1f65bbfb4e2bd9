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
/// the inotify limit, and a run must not change its configuration halfway). They are merged here
/// rather than stacked as providers because stacking merges arrays element by element: an
/// experiment with one hidden layer would silently inherit the second layer of appsettings.json.
/// So an array given by the experiment file replaces the whole array below it; environment and
/// command line still override single elements (<c>--Model:Layers:0:Width=8</c>).
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
        var appSettings = ReadJson(Path.Combine(appDirectory, "appsettings.json"), optional: true, "settings file");
        var experimentPath = ExperimentPath(arguments, currentDirectory);
        var experiment = experimentPath is null
            ? new Dictionary<string, string?>()
            : ReadJson(experimentPath, optional: false, "experiment file");

        return builder
            .AddInMemoryCollection(Overlay(appSettings, experiment))
            .AddEnvironmentVariables(EnvironmentPrefix)
            .AddCommandLine(arguments.ToArray());
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

    static Dictionary<string, string?> ReadJson(string path, bool optional, string description)
    {
        if (!File.Exists(path))
        {
            if (optional) return new();
            throw new InvalidConfigurationException(
                $"The {description} {path} does not exist (--experiment; a relative path is resolved against the current directory). Check the path.");
        }
        try
        {
            return new ConfigurationBuilder()
                .AddJsonFile(path, optional: false, reloadOnChange: false)
                .Build()
                .AsEnumerable()
                .Where(kv => kv.Value is not null)
                .ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.OrdinalIgnoreCase);
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or IOException or UnauthorizedAccessException)
        {
            var detail = e.InnerException?.Message ?? e.Message;
            throw new InvalidConfigurationException($"The {description} {path} cannot be read: {detail} Fix the JSON.", e);
        }
    }

    /// <summary><paramref name="upper"/> over <paramref name="lower"/>; an array in <paramref name="upper"/>
    /// replaces the array of the same key in <paramref name="lower"/> as a whole.</summary>
    public static Dictionary<string, string?> Overlay(IReadOnlyDictionary<string, string?> lower, IReadOnlyDictionary<string, string?> upper)
    {
        var replacedArrays = upper.Keys.SelectMany(ArrayPrefixes).ToHashSet(StringComparer.OrdinalIgnoreCase);
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
