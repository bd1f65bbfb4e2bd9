using Microsoft.Extensions.DependencyInjection;
using TinyGrow.Abstractions;

namespace Fixture.ThrowingService;

/// <summary>Registers a growth strategy whose constructor throws: the host must refuse it by name.</summary>
public sealed class ThrowingServiceModule : IPluginModule
{
    public int ContractVersion => Contract.Version;

    public void Register(IServiceCollection services) => services.AddSingleton<IGrowthStrategy, ThrowingStrategy>();
}

public sealed class ThrowingStrategy : IGrowthStrategy
{
    public ThrowingStrategy() => throw new InvalidOperationException("fixture: this strategy cannot be built");
    public string Name => "never";
    public NeuronProposal Propose(GrowthRequest request) => throw new NotSupportedException();
}
