using Microsoft.Extensions.DependencyInjection;
using TinyGrow.Abstractions;

namespace TinyGrow.Datasets.Mnist;

/// <summary>Registers the MNIST / Fashion-MNIST dataset provider (its downloader comes from the host).</summary>
public sealed class MnistPluginModule : IPluginModule
{
    /// <inheritdoc />
    public int ContractVersion => Contract.Version;

    /// <inheritdoc />
    public void Register(IServiceCollection services) =>
        services.AddSingleton<IDatasetProvider, MnistDatasetProvider>();
}
