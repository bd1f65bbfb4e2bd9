using Microsoft.Extensions.DependencyInjection;
using TinyGrow.Abstractions;

namespace Fixture.NeedsLibrary;

/// <summary>Registers a growth strategy whose name comes from Fixture.Library: nothing here touches the
/// library until the strategy is used, so only a check at load time can tell that it is missing.</summary>
public sealed class NeedsLibraryModule : IPluginModule
{
    public int ContractVersion => Contract.Version;

    public void Register(IServiceCollection services) => services.AddSingleton<IGrowthStrategy, LibraryStrategy>();
}

public sealed class LibraryStrategy : IGrowthStrategy
{
    public string Name => Fixture.Library.LibraryNames.Strategy("library");
    public NeuronProposal Propose(GrowthRequest request) => throw new NotSupportedException("fixture: discovered and resolved only");
}
