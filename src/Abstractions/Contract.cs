namespace TinyGrow.Abstractions;

/// <summary>The version of these contracts.</summary>
/// <remarks>
/// A plugin returns <see cref="Version"/> from <see cref="IPluginModule.ContractVersion"/>; being a
/// constant, the value is compiled into the plugin, so the host sees the version the plugin was
/// built against and refuses a mismatch by name instead of failing later with a type-load error.
/// Bump it on any breaking change to a type in this assembly.
/// </remarks>
public static class Contract
{
    /// <summary>Current contract version.</summary>
    public const int Version = 3;
}

/// <summary>A plugin's single entry point: registers its services into dependency injection.</summary>
public interface IPluginModule
{
    /// <summary>Must return <see cref="Contract.Version"/> as compiled into the plugin.</summary>
    int ContractVersion { get; }

    /// <summary>Registers layer kinds, strategies and dataset providers, e.g.
    /// <c>services.AddSingleton&lt;IGrowthStrategy, MyStrategy&gt;()</c>. The host indexes them by
    /// their <c>Name</c>.</summary>
    void Register(Microsoft.Extensions.DependencyInjection.IServiceCollection services);
}
