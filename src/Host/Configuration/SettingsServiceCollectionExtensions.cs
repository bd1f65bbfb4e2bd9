using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace TinyGrow.Host.Configuration;

/// <summary>Makes the bound settings available to the host's classes and to plugins.</summary>
public static class SettingsServiceCollectionExtensions
{
    /// <summary>Registers <paramref name="settings"/> and each section as <see cref="IOptions{TOptions}"/>
    /// (bound once at start, so every consumer sees the same, already validated values).</summary>
    public static IServiceCollection AddTinyGrowSettings(this IServiceCollection services, TinyGrowSettings settings) =>
        services
            .AddSingleton(settings)
            .AddSingleton(Options.Create(settings.Dataset))
            .AddSingleton(Options.Create(settings.Model))
            .AddSingleton(Options.Create(settings.Growth))
            .AddSingleton(Options.Create(settings.Training))
            .AddSingleton(Options.Create(settings.Output))
            .AddSingleton(Options.Create(settings.Checkpoint))
            .AddSingleton(Options.Create(settings.Plugins))
            .AddSingleton(Options.Create(settings.Daemon));
}
