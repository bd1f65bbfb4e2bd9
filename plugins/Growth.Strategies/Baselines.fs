/// The baselines TINY is measured against, as settings of Proposal.propose:
///   gradmax (Evci et al., ICLR 2022, "GradMax: Growing Neural Networks using Gradient Information"):
///     zero fan-in, fan-out along the top right singular vectors of M2 (no covariance, no projection,
///     no δ), each scaled to the mean norm of B's existing fan-outs; applied at γ = 1 without a search
///     (the loss does not change with γ while α = 0). K: the singular values with s_k ≥ threshold·s_1.
///   random: fan-in drawn like A's initialisation, least-squares fan-out for it (first-order decrease
///     ≥ 0 neuron by neuron), no projection, no δ; γ searched as for TINY. K: as many as TINY's count
///     rule keeps of the whitened directions of −M2, so that it grows about as fast.
namespace TinyGrow.Growth.Strategies

open TinyGrow.Abstractions

type GradMaxStrategy() =
    interface IGrowthStrategy with
        member _.Name = "gradmax"

        member _.Propose(request) =
            Proposal.propose
                { Project = false; Whiten = false; FanIn = Proposal.Zero; ApplyDelta = false }
                (fun s -> TinyStrategy.SelectCount s request.Options.RelativeThreshold request.MaxNeurons) request

type RandomStrategy() =
    interface IGrowthStrategy with
        member _.Name = "random"

        member _.Propose(request) =
            Proposal.propose
                { Project = false; Whiten = true; FanIn = Proposal.Drawn; ApplyDelta = false }
                (TinyStrategy.Select request) request
