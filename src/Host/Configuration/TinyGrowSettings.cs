using Microsoft.Extensions.Configuration;
using TinyGrow.Abstractions;

namespace TinyGrow.Host.Configuration;

/// <summary>Section "Plugins".</summary>
public sealed class PluginsOptions
{
    /// <summary>Folders searched for plugins besides <c>plugins/</c> next to the executable
    /// (relative paths are resolved against the current directory). One folder may be given as one
    /// value (<c>--Plugins:Folders=/path</c>) as well as a list (<c>--Plugins:Folders:0=/path</c>).</summary>
    public List<string> Folders { get; set; } = new();
}

/// <summary>Every section of the configuration the host uses, bound once at start.</summary>
public sealed class TinyGrowSettings
{
    /// <summary>Section "Dataset".</summary>
    public DatasetOptions Dataset { get; init; } = new();
    /// <summary>Section "Model".</summary>
    public ModelOptions Model { get; init; } = new();
    /// <summary>Section "Growth".</summary>
    public GrowthOptions Growth { get; init; } = new();
    /// <summary>Section "Training".</summary>
    public TrainingOptions Training { get; init; } = new();
    /// <summary>Section "Output".</summary>
    public OutputOptions Output { get; init; } = new();
    /// <summary>Section "Checkpoint".</summary>
    public CheckpointOptions Checkpoint { get; init; } = new();
    /// <summary>"auto" (CUDA when available), "cpu", "cuda" or "cuda:&lt;index&gt;".</summary>
    public string Device { get; init; } = "auto";
    /// <summary>Section "Plugins".</summary>
    public PluginsOptions Plugins { get; init; } = new();
    /// <summary>Section "Daemon".</summary>
    public DaemonOptions Daemon { get; init; } = new();

    /// <summary>Binds every section, strictly: a key nothing reads (a typo such as <c>Training:Epoch</c>
    /// or <c>Trainig:Epochs</c>, a logging key no provider knows), a gap in a list's indices, or a value
    /// that does not convert is an error, not silently ignored (<see cref="StrictKeys"/>).</summary>
    /// <exception cref="InvalidConfigurationException">The message names each key (one per line).</exception>
    public static TinyGrowSettings Bind(IConfiguration configuration)
    {
        var problems = StrictKeys.Problems(configuration);
        if (problems.Count > 0)
            throw new InvalidConfigurationException(string.Join(Environment.NewLine, problems));
        var model = BindSection<ModelOptions>(configuration, "Model");
        // A conv-only key set on a dense layer would be accepted and ignored (docs/configuration.md).
        if (LayerKeys.Problems(configuration, model.Layers) is { Count: > 0 } misplaced)
            throw new InvalidConfigurationException(string.Join(Environment.NewLine, misplaced));
        return new()
        {
            Dataset = BindSection<DatasetOptions>(configuration, "Dataset"),
            Model = model,
            Growth = BindSection<GrowthOptions>(configuration, "Growth"),
            Training = BindSection<TrainingOptions>(configuration, "Training"),
            Output = BindSection<OutputOptions>(configuration, "Output"),
            Checkpoint = BindSection<CheckpointOptions>(configuration, "Checkpoint"),
            Plugins = WithOneValue(configuration, "Plugins", "Folders", (c, s) => BindSection<PluginsOptions>(c, s), p => p.Folders),
            Daemon = BindSection<DaemonOptions>(configuration, "Daemon"),
            Device = configuration["Device"] ?? "auto",
        };
    }

    /// <summary>A list of values set as one value (<c>--Plugins:Folders=/path</c>, <c>TINYGROW_Plugins__Folders=/path</c>,
    /// <c>"Folders": "/path"</c>) is a list of one (StrictKeys accepts it). The binder cannot convert a
    /// string to a list, so the section is bound without that value, which is then added after any
    /// elements set as well (<c>Plugins:Folders:0</c>, in any layer).</summary>
    static T WithOneValue<T>(IConfiguration configuration, string section, string list, Func<IConfiguration, string, T> bind, Func<T, List<string>> elements)
    {
        var key = ConfigurationPath.Combine(section, list);
        if (configuration[key] is not { } one) return bind(configuration, section);
        var rest = new ConfigurationBuilder()
            .AddInMemoryCollection(configuration.GetSection(section).AsEnumerable()
                .Where(kv => kv.Value is not null && !string.Equals(kv.Key, key, StringComparison.OrdinalIgnoreCase)))
            .Build();
        var options = bind(rest, section);
        if (one.Length > 0 && !elements(options).Contains(one, StringComparer.Ordinal))
            elements(options).Add(one);
        return options;
    }

    static IEnumerable<Exception> Chain(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException) yield return x;
    }

    static T BindSection<T>(IConfiguration configuration, string section) where T : new()
    {
        try
        {
            return configuration.GetSection(section).Get<T>(o => o.ErrorOnUnknownConfiguration = true) ?? new T();
        }
        catch (InvalidOperationException e)
        {
            // The binder names the key whose value does not convert, or lists the unknown properties
            // (in an inner exception when they belong to a nested object such as a layer).
            const string unknownMarker = "were not found on the instance of ";
            var unknown = Chain(e).Select(x => x.Message).FirstOrDefault(m => m.Contains(unknownMarker, StringComparison.Ordinal));
            string detail;
            if (unknown is not null)
            {
                var at = unknown.IndexOf(unknownMarker, StringComparison.Ordinal) + unknownMarker.Length;
                var colon = unknown.IndexOf(':', at);
                detail = $"unknown key(s) {unknown[(colon + 2)..].TrimEnd('.', ')')} in section '{section}' (no such property on {unknown[at..colon]})";
            }
            else
                detail = string.Join(" ", Chain(e).Select(x => x.Message.TrimEnd('.') + "."));
            throw new InvalidConfigurationException(
                $"{detail.TrimEnd('.')}. Fix the key's name or value in the experiment file, environment (TINYGROW_{section}__Key) or command line (--{section}:Key=value).", e);
        }
    }
}
