using Microsoft.Extensions.DependencyInjection;
using TinyGrow.Abstractions;
using TorchSharp;

namespace Fixture.GoodPlugin;

/// <summary>Registers one of each kind of service; none of them does real work.</summary>
public sealed class GoodPluginModule : IPluginModule
{
    public int ContractVersion => Contract.Version;

    public void Register(IServiceCollection services)
    {
        services.AddSingleton<IGrowthStrategy, FixtureStrategy>();
        services.AddSingleton<ILayerKind, FixtureLayerKind>();
        services.AddSingleton<IDatasetProvider, FixtureDatasets>();
    }
}

public sealed class FixtureStrategy : IGrowthStrategy
{
    public string Name => "fixture-strategy";
    public NeuronProposal Propose(GrowthRequest request) => throw new NotSupportedException("fixture: discovered and resolved only");
}

public sealed class FixtureLayerKind : ILayerKind
{
    public string Name => "fixture-kind";
    public IReadOnlyList<string> Validate(LayerSpec spec) =>
        spec.Activation switch
        {
            "fixture-bad" => ["Activation 'fixture-bad' is refused by fixture-kind: use any other."],
            // A plugin bug: the host must still exit with a documented code and a message.
            "fixture-throw" => throw new InvalidOperationException("fixture: a bug in a plugin"),
            _ => [],
        };
    public IGrowableLayer Create(LayerSpec spec, int inputWidth, torch.Device device, torch.ScalarType dtype, torch.Generator? generator) =>
        throw new NotSupportedException("fixture: discovered and resolved only");
    public JunctionRows Rows(IGrowableLayer a, IGrowableLayer b, torch.Tensor aInput, torch.Tensor bInput, torch.Tensor gradB) =>
        throw new NotSupportedException("fixture: discovered and resolved only");
}

/// <summary>Serves "fixture-data", always missing: lets tests reach the dataset step of a run without data.</summary>
public sealed class FixtureDatasets : IDatasetProvider
{
    public IReadOnlyList<string> Names => ["fixture-data"];
    public LoadedDataset Load(string name, DatasetOptions options, torch.Device device, CancellationToken cancellation) =>
        throw new DatasetException($"fixture-data is never there (looked in {options.Root}): nothing to fix, this is a test.");
}
