using Microsoft.Extensions.DependencyInjection;
using TinyGrow.Abstractions;

namespace Fixture.ThrowingService;

/// <summary>Registers services the host must refuse by name: a growth strategy whose constructor
/// throws, a dataset provider whose Names getter throws, a layer kind with a blank name.</summary>
public sealed class ThrowingServiceModule : IPluginModule
{
    public int ContractVersion => Contract.Version;

    public void Register(IServiceCollection services)
    {
        services.AddSingleton<IGrowthStrategy, ThrowingStrategy>();
        services.AddSingleton<IDatasetProvider, NamesThrowProvider>();
        services.AddSingleton<ILayerKind, BlankNameKind>();
    }
}

public sealed class ThrowingStrategy : IGrowthStrategy
{
    public ThrowingStrategy() => throw new InvalidOperationException("fixture: this strategy cannot be built");
    public string Name => "never";
    public NeuronProposal Propose(GrowthRequest request) => throw new NotSupportedException();
}

public sealed class NamesThrowProvider : IDatasetProvider
{
    public IReadOnlyList<string> Names => throw new InvalidOperationException("fixture: these names cannot be read");
    public LoadedDataset Load(string name, DatasetOptions options, TorchSharp.torch.Device device, CancellationToken cancellation) => throw new NotSupportedException();
}

public sealed class BlankNameKind : ILayerKind
{
    public string Name => " ";
    public IReadOnlyList<string> Validate(LayerSpec spec) => [];
    public IGrowableLayer Create(LayerSpec spec, int inputWidth, TorchSharp.torch.Device device, TorchSharp.torch.ScalarType dtype, TorchSharp.torch.Generator? generator) => throw new NotSupportedException();
}
