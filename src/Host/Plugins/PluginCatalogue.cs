using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using TinyGrow.Abstractions;

namespace TinyGrow.Host.Plugins;

/// <summary>One name served by a plugin.</summary>
/// <param name="Kind">"layer kind", "growth strategy" or "dataset".</param>
/// <param name="Name">The name used in configuration.</param>
/// <param name="Plugin">The plugin file that serves it.</param>
public sealed record CatalogueEntry(string Kind, string Name, DiscoveredPlugin Plugin);

/// <summary>
/// The layer kinds, growth strategies and datasets registered by plugins, by name (case-insensitive),
/// each with the plugin file it came from. A name served twice: the first plugin (in search order)
/// wins and a warning names both files.
/// </summary>
public sealed class PluginCatalogue : IDisposable
{
    /// <summary>Entry kind of an <see cref="ILayerKind"/>.</summary>
    public const string LayerKindKind = "layer kind";
    /// <summary>Entry kind of an <see cref="IBlockKind"/>.</summary>
    public const string BlockKindKind = "block kind";
    /// <summary>Entry kind of an <see cref="IGrowthStrategy"/>.</summary>
    public const string StrategyKind = "growth strategy";
    /// <summary>Entry kind of a dataset served by an <see cref="IDatasetProvider"/>.</summary>
    public const string DatasetKind = "dataset";

    readonly Dictionary<string, (ILayerKind Service, CatalogueEntry Entry)> _layerKinds = new(StringComparer.OrdinalIgnoreCase);
    readonly Dictionary<string, (IBlockKind Service, CatalogueEntry Entry)> _blockKinds = new(StringComparer.OrdinalIgnoreCase);
    readonly Dictionary<string, (IGrowthStrategy Service, CatalogueEntry Entry)> _strategies = new(StringComparer.OrdinalIgnoreCase);
    readonly Dictionary<string, (IDatasetProvider Service, CatalogueEntry Entry)> _datasets = new(StringComparer.OrdinalIgnoreCase);
    readonly List<CatalogueEntry> _entries = new();
    readonly List<string> _warnings = new();
    readonly List<PluginProblem> _refused = new();
    readonly IReadOnlyList<PluginProblem> _discoveryProblems;
    readonly List<IDisposable> _owned = new();

    /// <summary>Creates the services the plugins registered (each once) and indexes them.</summary>
    public PluginCatalogue(DiscoveryResult discovery, IServiceProvider services, ILogger<PluginCatalogue> logger)
    {
        Folders = discovery.Folders;
        _discoveryProblems = discovery.Problems;
        foreach (var registration in discovery.Registrations)
        {
            var type = registration.Descriptor.ServiceType;
            if (type != typeof(ILayerKind) && type != typeof(IBlockKind) && type != typeof(IGrowthStrategy) && type != typeof(IDatasetProvider)) continue;
            object service;
            try
            {
                service = Create(registration.Descriptor, services);
            }
            catch (Exception e)
            {
                // A constructor that throws surfaces as the activation's exception; name the plugin's own.
                var cause = e is System.Reflection.TargetInvocationException { InnerException: { } inner } ? inner : e;
                var implementation = registration.Descriptor.ImplementationType?.FullName ?? type.Name;
                _refused.Add(new PluginProblem(registration.Plugin.Path, $"its {type.Name} {implementation} could not be created ({cause.GetType().Name}: {cause.Message})", "fix the plugin"));
                Warn(logger, $"Plugin {registration.Plugin.Path}: its {type.Name} could not be created ({cause.GetType().Name}: {cause.Message}); it is left out. Fix the plugin.");
                continue;
            }
            if (service is IDisposable disposable) _owned.Add(disposable);
            // Names are the plugin's code too: a getter that throws, or a blank name, refuses the
            // service (as a throwing constructor does) instead of ending the host with an unexpected error.
            var implementationName = registration.Descriptor.ImplementationType?.FullName ?? service.GetType().FullName;
            string[] names;
            try
            {
                names = service switch
                {
                    ILayerKind kind => [kind.Name],
                    IBlockKind block => [block.Name],
                    IGrowthStrategy strategy => [strategy.Name],
                    IDatasetProvider provider => provider.Names?.ToArray() ?? [],
                    _ => [],
                };
            }
            catch (Exception e)
            {
                _refused.Add(new PluginProblem(registration.Plugin.Path, $"its {type.Name} {implementationName} could not give its name ({e.GetType().Name}: {e.Message})", "fix the plugin"));
                Warn(logger, $"Plugin {registration.Plugin.Path}: its {type.Name} could not give its name ({e.GetType().Name}: {e.Message}); it is left out. Fix the plugin.");
                continue;
            }
            if (names.Length == 0 || names.Any(string.IsNullOrWhiteSpace))
            {
                var what = names.Length == 0 ? "no name" : "a blank name";
                _refused.Add(new PluginProblem(registration.Plugin.Path, $"its {type.Name} {implementationName} gives {what}, so no configuration can select it", "fix the plugin"));
                Warn(logger, $"Plugin {registration.Plugin.Path}: its {type.Name} {implementationName} gives {what}; it is left out. Fix the plugin.");
                continue;
            }
            foreach (var name in names)
                switch (service)
                {
                    case ILayerKind kind: Add(_layerKinds, LayerKindKind, name, kind, registration.Plugin, logger); break;
                    case IBlockKind block: Add(_blockKinds, BlockKindKind, name, block, registration.Plugin, logger); break;
                    case IGrowthStrategy strategy: Add(_strategies, StrategyKind, name, strategy, registration.Plugin, logger); break;
                    case IDatasetProvider provider: Add(_datasets, DatasetKind, name, provider, registration.Plugin, logger); break;
                }
        }
    }

    /// <summary>Folders searched for plugins.</summary>
    public IReadOnlyList<string> Folders { get; }
    /// <summary>Every name served, in discovery order (duplicates left out).</summary>
    public IReadOnlyList<CatalogueEntry> Entries => _entries;
    /// <summary>Services a plugin registered that could not be created (their constructor threw): left out.</summary>
    public IReadOnlyList<PluginProblem> Refused => _refused;
    /// <summary>Warnings raised while indexing (names served twice, services that failed to build).</summary>
    public IReadOnlyList<string> Warnings => _warnings;

    /// <summary>All layer kinds by name (what the engine is given).</summary>
    public IReadOnlyDictionary<string, ILayerKind> LayerKinds =>
        _layerKinds.ToDictionary(kv => kv.Key, kv => kv.Value.Service, StringComparer.OrdinalIgnoreCase);

    /// <summary>All block kinds by name (what the engine builds models from).</summary>
    public IReadOnlyDictionary<string, IBlockKind> BlockKinds =>
        _blockKinds.ToDictionary(kv => kv.Key, kv => kv.Value.Service, StringComparer.OrdinalIgnoreCase);

    /// <summary>The layer kind named <paramref name="name"/>.</summary>
    /// <exception cref="UnknownPluginNameException">Lists the layer kinds available.</exception>
    public ILayerKind GetLayerKind(string name) => Get(_layerKinds, LayerKindKind, name);
    /// <summary>The growth strategy named <paramref name="name"/>.</summary>
    /// <exception cref="UnknownPluginNameException">Lists the strategies available.</exception>
    public IGrowthStrategy GetStrategy(string name) => Get(_strategies, StrategyKind, name);
    /// <summary>The provider serving the dataset named <paramref name="name"/>.</summary>
    /// <exception cref="UnknownPluginNameException">Lists the datasets available.</exception>
    public IDatasetProvider GetDatasetProvider(string name) => Get(_datasets, DatasetKind, name);

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var owned in _owned) owned.Dispose();
        _owned.Clear();
    }

    T Get<T>(Dictionary<string, (T Service, CatalogueEntry Entry)> index, string kind, string name)
    {
        if (index.TryGetValue(name, out var found)) return found.Service;
        var available = index.Count == 0 ? "none (no plugin serves one)" : string.Join(", ", index.Keys.Order(StringComparer.OrdinalIgnoreCase));
        var none = kind == StrategyKind ? " (or \"none\" for a fixed network)" : "";
        // What a refused plugin would have served is unknown (its code did not run, or failed), so every
        // refusal is named: the one the name was meant to come from is among them, with its fix.
        var refused = _discoveryProblems.Concat(_refused).Select(p => p.Message + ".").ToList();
        throw new UnknownPluginNameException(
            $"no {kind} named '{name}'. Available: {available}{none}. Plugins are searched in {string.Join(", ", Folders)} " +
            "as <folder>/<Name>/<Name>.dll; run `tinygrow plugins` to list what was found, or add a folder with Plugins:Folders." +
            (refused.Count == 0 ? "" : $" Refused, and so not serving anything (the name may be one of theirs): {string.Join(" ", refused)}"));
    }

    void Add<T>(Dictionary<string, (T Service, CatalogueEntry Entry)> index, string kind, string name, T service,
        DiscoveredPlugin plugin, ILogger logger)
    {
        if (index.TryGetValue(name, out var first))
        {
            Warn(logger, $"The {kind} '{name}' is served by {first.Entry.Plugin.Path} and by {plugin.Path}: the first is used. Remove one of them.");
            return;
        }
        var entry = new CatalogueEntry(kind, name, plugin);
        index[name] = (service, entry);
        _entries.Add(entry);
    }

    void Warn(ILogger logger, string message)
    {
        _warnings.Add(message);
        logger.LogWarning("{Message}", message);
    }

    // Each registration is built from its own descriptor so that one failing constructor does not
    // hide the other services, and so that the plugin file of each service is known.
    static object Create(ServiceDescriptor d, IServiceProvider services)
    {
        if (d.IsKeyedService)
            return d.KeyedImplementationInstance
                ?? d.KeyedImplementationFactory?.Invoke(services, d.ServiceKey)
                ?? ActivatorUtilities.CreateInstance(services, d.KeyedImplementationType!);
        return d.ImplementationInstance
            ?? d.ImplementationFactory?.Invoke(services)
            ?? ActivatorUtilities.CreateInstance(services, d.ImplementationType!);
    }
}
