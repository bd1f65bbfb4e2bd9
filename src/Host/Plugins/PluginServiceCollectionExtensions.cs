using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using TinyGrow.Datasets.Downloads;

namespace TinyGrow.Host.Plugins;

/// <summary>Wires plugin discovery into the host's services.</summary>
public static class PluginServiceCollectionExtensions
{
    /// <summary>Discovers the plugins in <paramref name="folders"/>, adds their services, the services
    /// the host offers plugins (logging, the shared <see cref="DatasetDownloader"/>) and a
    /// <see cref="PluginCatalogue"/> over them. Refusals are in the result: log them once the host
    /// has a logger (<see cref="DiscoveryResult.LogProblems"/>).</summary>
    public static DiscoveryResult AddTinyGrowPlugins(this IServiceCollection services, IReadOnlyList<string> folders)
    {
        services.AddLogging();
        services.AddSingleton<DatasetDownloader>();
        var discovery = PluginDiscovery.Discover(folders, services);
        services.AddSingleton(discovery);
        services.AddSingleton(sp => new PluginCatalogue(discovery, sp, sp.GetRequiredService<ILogger<PluginCatalogue>>()));
        return discovery;
    }
}
