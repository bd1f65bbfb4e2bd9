using Microsoft.Extensions.DependencyInjection;
using TinyGrow.Abstractions;
using static TorchSharp.torch;

namespace Fixture.BadProposal;

/// <summary>Registers <see cref="WrongShapeStrategy"/>: a strategy that builds and names itself fine, and whose
/// proposals break the contract, so that a run using it must end as a plugin fault.</summary>
public sealed class BadProposalModule : IPluginModule
{
    public int ContractVersion => Contract.Version;

    public void Register(IServiceCollection services) => services.AddSingleton<IGrowthStrategy, WrongShapeStrategy>();
}

/// <summary>Proposes one neuron whose fan-in has one input too many for every junction.</summary>
public sealed class WrongShapeStrategy : IGrowthStrategy
{
    public string Name => "fixture-wrong-shape";

    public NeuronProposal Propose(GrowthRequest request)
    {
        var inputs = request.Statistics.S2.shape[0];
        var outputs = request.Statistics.M.shape[1];
        return new NeuronProposal(zeros(1, inputs + 1, dtype: ScalarType.Float64), zeros(outputs, 1, dtype: ScalarType.Float64),
                                  null, 0.0, [1.0], 1.0, 1.0);
    }
}
