namespace MyStrategy

open Microsoft.Extensions.DependencyInjection
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core

/// Random fan-ins, least-squares fan-outs (the shape of the shipped `random` strategy, as a worked
/// example). With N = −M2 (D2×out), a neuron with fan-in α_k (a row of A) and fan-out ω_k (a column
/// of B) lowers the mean loss by σ′(0)·α_kᵀNω_k to first order, and ω_k = Nᵀα_k / (α_kᵀS2α_k) is
/// the best fan-out for α_k; its score α_kᵀNω_k is then ≥ 0. The engine searches the amplitude γ.
type Strategy() =
    interface IGrowthStrategy with
        member _.Name = "my-strategy"

        member _.Propose(request) =
            let stats = request.Statistics
            // Everything is float64 on the statistics' device; temporaries are disposed with the
            // scope, and what the proposal keeps is moved out of it.
            use _ = torch.NewDisposeScope ()
            let n = stats.M2.neg ()                                             // D2×out
            let d2 = stats.S2.shape[0]
            let k = min request.MaxNeurons 8
            let bound = 1.0 / sqrt (float (max 1L (if request.Junction.A.HasBias then d2 - 1L else d2)))
            let uniform = torch.rand ([| int64 k; d2 |], dtype = torch.float64, generator = request.Generator)
            let alpha = ((uniform * 2.0 - 1.0) * bound).``to`` n.device          // K×D2, uniform ±bound
            let alphaN = alpha.mm n                                             // K×out
            let variance = (alpha.mm stats.S2 * alpha).sum(1L, true).clamp_min 1e-300
            let fit = alphaN / variance                                         // K×out
            let fanOut = fit.t().contiguous ()                                  // out×K
            let scores = (alphaN * fit).sum(1L).cpu().data<float>().ToArray ()
            // The bottleneck, as the engine reports it: what no change of B's existing weights expresses.
            let update = Bottleneck.existingWeightsUpdate stats request.Options.EigenCutoff
            update.Delta.Dispose ()
            new NeuronProposal (alpha.MoveToOuterDisposeScope (), fanOut.MoveToOuterDisposeScope (), null, 0.0, scores,
                                request.Junction.ActivationSlopeAtZero, update.Bottleneck)

/// The plugin's entry point: the host creates it and calls Register once.
type Plugin() =
    interface IPluginModule with
        // A constant, compiled in: the host refuses a plugin built for another contract by name.
        member _.ContractVersion = Contract.Version
        member _.Register services = services.AddSingleton<IGrowthStrategy, Strategy>() |> ignore
