using McMaster.NETCore.Plugins;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace TinyGrow.Host.Plugins;

/// <summary>A plugin file that loaded and registered its services.</summary>
/// <param name="Name">Folder and assembly name, e.g. "Growth.Linear".</param>
/// <param name="Path">Absolute path of the plugin's main DLL.</param>
/// <param name="Version">The assembly's informational version.</param>
public sealed record DiscoveredPlugin(string Name, string Path, string Version);

/// <summary>A plugin as config.json records it: which assembly served the run, exactly.</summary>
/// <param name="Name">The plugin's assembly name.</param>
/// <param name="Version">Its assembly version.</param>
/// <param name="Path">The DLL loaded.</param>
/// <param name="Sha256">The DLL's SHA-256 (lowercase hex).</param>
public sealed record PluginRecord(string Name, string Version, string Path, string Sha256);

/// <summary>A plugin file (or folder) that was refused, and why; the host goes on without it.</summary>
/// <param name="Path">The plugin DLL or folder concerned.</param>
/// <param name="Reason">What is wrong.</param>
/// <param name="Fix">What to do about it.</param>
public sealed record PluginProblem(string Path, string Reason, string Fix)
{
    /// <summary>One line for the log.</summary>
    public string Message => $"Plugin {Path} refused: {Reason}. Fix: {Fix}";
}

/// <summary>One service descriptor a plugin added, in registration order (the catalogue uses the
/// order to tell which plugin file each resolved service came from).</summary>
public sealed record PluginRegistration(ServiceDescriptor Descriptor, DiscoveredPlugin Plugin);

/// <summary>What discovery found: the folders searched, the plugins loaded (with their loaders,
/// kept alive for the life of the process), the registrations and the refusals.</summary>
public sealed class DiscoveryResult
{
    internal DiscoveryResult(IReadOnlyList<string> folders, IReadOnlyList<DiscoveredPlugin> plugins,
        IReadOnlyList<PluginRegistration> registrations, IReadOnlyList<PluginProblem> problems, IReadOnlyList<PluginLoader> loaders)
    {
        Folders = folders; Plugins = plugins; Registrations = registrations; Problems = problems; Loaders = loaders;
    }

    /// <summary>Absolute folders searched for <c>&lt;Name&gt;/&lt;Name&gt;.dll</c>.</summary>
    public IReadOnlyList<string> Folders { get; }
    /// <summary>Plugins loaded, in discovery order (folders in order, names sorted).</summary>
    public IReadOnlyList<DiscoveredPlugin> Plugins { get; }
    /// <summary>Service descriptors added by plugins, in registration order.</summary>
    public IReadOnlyList<PluginRegistration> Registrations { get; }
    /// <summary>Refused plugins.</summary>
    public IReadOnlyList<PluginProblem> Problems { get; }
    /// <summary>The plugins' load contexts.</summary>
    public IReadOnlyList<PluginLoader> Loaders { get; }

    /// <summary>Logs every refusal as a warning (discovery runs before the host has a logger).</summary>
    public void LogProblems(ILogger logger)
    {
        foreach (var problem in Problems)
            logger.LogWarning("Plugin {PluginPath} refused: {Reason}. Fix: {Fix}", problem.Path, problem.Reason, problem.Fix);
    }
}
