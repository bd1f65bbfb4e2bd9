using Microsoft.Extensions.DependencyInjection;
using TinyGrow.Abstractions;
using TinyGrow.Core;
using static TorchSharp.torch;

namespace MyStrategy;

/// <summary>The plugin's entry point: the host creates it and calls Register once.</summary>
public sealed class Plugin : IPluginModule
{
    // A constant, compiled in: the host refuses a plugin built for another contract by name.
    public int ContractVersion => Contract.Version;

    public void Register(IServiceCollection services) =>
        services.AddSingleton<IGrowthStrategy, Strategy>();
}

/// <summary>
/// Random fan-ins, least-squares fan-outs (the shape of the shipped `random` strategy, as a worked
/// example). With N = −M2 (D2×out), a neuron with fan-in α_k (a row of A) and fan-out ω_k (a column
/// of B) lowers the mean loss by σ′(0)·α_kᵀNω_k to first order, and ω_k = Nᵀα_k / (α_kᵀS2α_k) is
/// the best fan-out for α_k; its score α_kᵀNω_k is then ≥ 0. The engine searches the amplitude γ.
/// </summary>
public sealed class Strategy : IGrowthStrategy
{
    public string Name => "my-strategy";

    public NeuronProposal Propose(GrowthRequest request)
    {
        var stats = request.Statistics;
        // Everything is float64 on the statistics' device; temporaries are disposed with the scope,
        // and what the proposal keeps is moved out of it.
        using var scope = NewDisposeScope();
        var n = stats.M2.neg();                                          // D2×out
        var d2 = stats.S2.shape[0];
        var k = Math.Min(request.MaxNeurons, 8);
        var bound = 1.0 / Math.Sqrt(Math.Max(1, request.Junction.A.HasBias ? d2 - 1 : d2));
        var alpha = (rand(new long[] { k, d2 }, dtype: float64, generator: request.Generator) * 2.0 - 1.0)
            .mul(bound).to(n.device);                                     // K×D2
        var alphaN = alpha.mm(n);                                         // K×out
        var variance = (alpha.mm(stats.S2) * alpha).sum(1, keepdim: true).clamp_min(1e-300);
        var fit = alphaN / variance;                                      // K×out
        var fanOut = fit.t().contiguous();                                // out×K
        var scores = (alphaN * fit).sum(1).cpu().data<double>().ToArray();

        // The bottleneck, as the engine reports it: what no change of B's existing weights expresses.
        var update = Bottleneck.existingWeightsUpdate(stats, request.Options.EigenCutoff);
        update.Delta.Dispose();
        return new NeuronProposal(alpha.MoveToOuterDisposeScope(), fanOut.MoveToOuterDisposeScope(),
            Delta: null, DeltaDecrease: 0.0, NeuronScores: scores,
            ActivationSlope: request.Junction.ActivationSlopeAtZero, Bottleneck: update.Bottleneck);
    }
}
