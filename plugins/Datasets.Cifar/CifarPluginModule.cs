using Microsoft.Extensions.DependencyInjection;
using TinyGrow.Abstractions;

namespace TinyGrow.Datasets.Cifar;

/// <summary>Registers the CIFAR-10/100 dataset provider (its downloader comes from the host).</summary>
public sealed class CifarPluginModule : IPluginModule
{
    /// <inheritdoc />
    public int ContractVersion => Contract.Version;

    /// <inheritdoc />
    public void Register(IServiceCollection services) =>
        services.AddSingleton<IDatasetProvider, CifarDatasetProvider>();
}
