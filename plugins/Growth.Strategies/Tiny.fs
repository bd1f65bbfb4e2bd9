/// TINY (Verbockhaven et al., TMLR 2024, "Growing Tiny Networks"): new neurons from the SVD of
/// S2^{-1/2} N, the projected desired update whitened by A's input covariance, and optionally δ,
/// the best least-squares update of B's existing weights.
namespace TinyGrow.Growth.Strategies

open TinyGrow.Abstractions
open TinyGrow.Core

type TinyStrategy() =
    /// Directions kept: λ_k > 0, λ_k ≥ threshold·λ_1 (relative, so the test is independent of the
    /// scale of the layer and the loss), at most `maxNeurons`.
    static member SelectCount (lambdas: float[]) (relativeThreshold: float) (maxNeurons: int) =
        if lambdas.Length = 0 || lambdas[0] <= 0.0 || maxNeurons <= 0 then 0
        else
            lambdas
            |> Array.takeWhile (fun l -> l > 0.0 && l >= relativeThreshold * lambdas[0])
            |> Array.length
            |> min maxNeurons

    /// TINY's count: the λ_k that are real (above the noise floor below) and pass SelectCount.
    static member Select (request: GrowthRequest) (lambdas: float[]) =
        let stats, options = request.Statistics, request.Options
        // λ_k² is neuron k's share of the first-order decrease; a share below NoiseFloor·tr E
        // (E: the whole desired update), or below the statistics' rounding level, is noise,
        // even when it is λ_1 itself.
        let floor = sqrt (max options.NoiseFloor (Bottleneck.roundingLevel stats stats.S2.shape[0]) * stats.TraceE)
        let real = lambdas |> Array.takeWhile (fun l -> l > floor)
        TinyStrategy.SelectCount real options.RelativeThreshold request.MaxNeurons

    interface IGrowthStrategy with
        member _.Name = "tiny"

        member _.Propose(request) =
            // Projection on, covariance on, δ as configured (Proposal.fs: one function, these settings).
            Proposal.propose
                { Project = true; Whiten = true; FanIn = Proposal.Optimal; ApplyDelta = request.Options.UseDelta }
                (TinyStrategy.Select request) request
