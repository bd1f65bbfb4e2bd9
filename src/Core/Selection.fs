/// Stage 2 of a growth step (DESIGN §4.1): where to grow. The room a junction has below its MaxWidth,
/// the junctions a step visits ("all", "best", "roundrobin"), and "best"'s rule: the largest first-order
/// decrease per added parameter, σ′(0)Σ_k scores_k / (K·parameters per neuron).
module TinyGrow.Core.Selection

open System
open TorchSharp
open TorchSharp.Modules
open TinyGrow.Abstractions

/// Room left in junction j (its A layer may not exceed the junction's MaxWidth).
let room (net: Network) (j: int) = max 0 (net.Junctions[j].MaxWidth - net.Junctions[j].A.OutputWidth)

/// Parameters that K new neurons of junction j would add.
let addedParameters (net: Network) (j: int) (k: int) = int64 k * net.Junctions[j].ParametersPerNeuron

/// Selection "best": the largest first-order decrease from new neurons per added parameter, among
/// proposals that add neurons (δ adds no parameters and would win any ratio); δ alone only when
/// no junction proposes a neuron. `added j k` is the parameter count of k neurons at junction j.
let bestProposal (added: int -> int -> int64) (proposals: (int * NeuronProposal) list) : int * NeuronProposal =
    let adding = proposals |> List.filter (fun (_, p) -> p.Count > 0)
    if adding.IsEmpty then proposals |> List.maxBy (fun (_, p) -> p.PredictedDecrease 1.0)
    else adding |> List.maxBy (fun (j, p) -> p.ActivationSlope * Array.sum p.NeuronScores / float (added j p.Count))

/// Junctions with room to grow, in order.
let growable (net: Network) = [ for j in 0 .. net.JunctionCount - 1 do if room net j > 0 then yield j ]

/// The junctions growth step `stepIndex` takes statistics of, in the order they grow: every growable
/// one ("all"; "best" grows only the winner among them), or the one in turn ("roundrobin").
let chosenJunctions (net: Network) (options: GrowthOptions) (stepIndex: int) : int list =
    match growable net with
    | [] -> []
    | js when options.Selection = "roundrobin" -> [ js[stepIndex % js.Length] ]
    | js -> js
