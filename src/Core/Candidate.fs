/// A candidate growth: a proposal applied to junction j at amplitude γ (A gains rows, its
/// normalisation grows, B gains columns, δ) so that it can be undone by loading the old tensors back,
/// or committed. The γ search evaluates candidates; the step commits one.
module TinyGrow.Core.Candidate

open System
open TorchSharp
open TorchSharp.Modules
open TinyGrow.Abstractions

/// Applies `proposal` to junction j at amplitude γ (see IJunction.Apply).
let apply (net: Network) (j: int) (proposal: NeuronProposal) (statistics: JunctionStatistics) (gamma: float) : IAppliedGrowth =
    net.Junctions[j].Apply (proposal, gamma, statistics)

let undo (applied: IAppliedGrowth) = applied.Undo ()

let commit (applied: IAppliedGrowth) = applied.Commit ()
