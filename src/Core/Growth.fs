/// One growth step (DESIGN §3): statistics pass → proposals from the strategy → amplitude γ by
/// line search on held-out training samples → apply. Each stage is a function of values; a
/// candidate is applied by loading new parameter tensors and undone by loading the old ones.
module TinyGrow.Core.Growth

open System
open TorchSharp
open TorchSharp.Modules
open TinyGrow.Abstractions

/// Rows a junction keeps from one batch of `count` out of `total` samples: RowsPerDimension·RowSize
/// over the pass, spread in proportion to the batch (0: every row).
let rowsPerBatch (rowsPerDimension: int) (junction: IJunction) (count: int64) (total: int64) =
    if rowsPerDimension <= 0 then 0L
    else max 1L ((int64 rowsPerDimension * junction.RowSize * count + total - 1L) / total)

/// Statistics of the given junctions over (x, y), in that order: per batch one probe forward
/// (batch statistics; running ones untouched) and one backward of the *sum* of the loss (so that g
/// is a per-sample gradient) to those junctions only, then GEMM sums over the rows each keeps.
let statisticsFor (junctions: int[]) (rowsPerDimension: int) (generator: torch.Generator | null) (net: Network)
                  (x: torch.Tensor) (y: torch.Tensor) (batchSize: int64) : JunctionStatistics[] =
    let accumulators = junctions |> Array.map (fun _ -> Statistics.JunctionAccumulator ())
    let n = x.shape[0]
    let mutable start = 0L
    while start < n do
        use scope = torch.NewDisposeScope ()
        let count = min batchSize (n - start)
        let xb, yb = x.narrow (0L, start, count), y.narrow (0L, start, count)
        let logits, records = net.ForwardRecording xb
        let loss = torch.nn.functional.cross_entropy (logits, yb, reduction = torch.nn.Reduction.Sum)
        let grads = torch.autograd.grad ([| loss |], junctions |> Array.map (fun j -> records[j].BOutput))
        use _ = torch.no_grad ()
        for k in 0 .. junctions.Length - 1 do
            let junction = net.Junctions[junctions[k]]
            let cap = rowsPerBatch rowsPerDimension junction count n
            use rows = junction.Rows (records[junctions[k]], grads[k], cap, generator)
            accumulators[k].Add rows
        start <- start + count
    accumulators |> Array.map (fun a -> a.Finish ())

/// Statistics of junctions first .. J−1 (element i is junction first + i).
let statisticsPassFrom (first: int) (rowsPerDimension: int) (generator: torch.Generator | null) (net: Network)
                       (x: torch.Tensor) (y: torch.Tensor) (batchSize: int64) : JunctionStatistics[] =
    statisticsFor [| first .. net.JunctionCount - 1 |] rowsPerDimension generator net x y batchSize

/// Statistics of every junction (element j is junction j).
let statisticsPass (net: Network) (x: torch.Tensor) (y: torch.Tensor) (batchSize: int64) : JunctionStatistics[] =
    statisticsPassFrom 0 0 null net x y batchSize

/// Applies `proposal` to junction j at amplitude γ (see IJunction.Apply).
let apply (net: Network) (j: int) (proposal: NeuronProposal) (statistics: JunctionStatistics) (gamma: float) : IAppliedGrowth =
    net.Junctions[j].Apply (proposal, gamma, statistics)

let undo (applied: IAppliedGrowth) = applied.Undo ()

let commit (applied: IAppliedGrowth) = applied.Commit ()

/// γ search on a √2 grid: γ = 0 is always a choice (it means "add nothing now"). From γ = 1 the
/// search goes up while the loss keeps falling (never capped at 1), or, if γ = √2 is no better,
/// down while it keeps falling; if γ = 1 is no better than γ = 0 it goes down until the loss falls
/// below the loss at 0, then on down while it keeps falling (the first γ below L(0) can hold a
/// small part of the available decrease).
/// Returns (γ, loss at γ, loss at 0).
let lineSearch (lossAt: float -> float) (maxSteps: int) : float * float * float =
    let factor = sqrt 2.0
    let l0 = lossAt 0.0
    /// Moves γ by `step` while the loss keeps falling.
    let rec follow (step: float) gamma loss k =
        if k >= maxSteps then gamma, loss
        else
            let next = lossAt (gamma * step)
            if next < loss then follow step (gamma * step) next (k + 1) else gamma, loss
    let l1 = lossAt 1.0
    if l1 < l0 then
        let gamma, loss = follow factor 1.0 l1 0
        // Stopped at 1: the best γ may lie below it (L(1) barely under L(0)).
        let gamma, loss = if gamma = 1.0 then follow (1.0 / factor) 1.0 l1 0 else gamma, loss
        gamma, loss, l0
    else
        let rec down gamma k =
            if k >= maxSteps then 0.0, l0
            else
                let g = gamma / factor
                let l = lossAt g
                if l < l0 then follow (1.0 / factor) g l k else down g (k + 1)
        let gamma, loss = down 1.0 0
        gamma, loss, l0

/// What one junction's growth did (a `growth` line of metrics.jsonl).
type GrowthEvent =
    { Junction: int
      Added: int
      Gamma: float
      PredictedDecrease: float
      MeasuredDecrease: float
      Bottleneck: float
      Width: int }

/// Loss on the held-out samples with the candidate (j, proposal, γ) applied, then undone.
let candidateLoss (net: Network) (j: int) (proposal: NeuronProposal) (statistics: JunctionStatistics) (heldX: torch.Tensor) (heldY: torch.Tensor) (gamma: float) =
    use scope = torch.NewDisposeScope () // the candidate's temporaries go with it
    let applied = apply net j proposal statistics gamma
    try Training.probeLoss net heldX heldY
    finally undo applied

/// Relative loss decrease below which a candidate is treated as no better than γ = 0.
let acceptanceMargin = 1e-6

/// Searches γ for junction j's proposal and applies it if γ > 0. A proposal with a fixed
/// `Amplitude` (e.g. GradMax's zero fan-in, which leaves the loss unchanged at every γ) is applied
/// at that γ without a search or the acceptance margin; its loss is still measured for the event.
let growJunction (net: Network) (j: int) (proposal: NeuronProposal) (statistics: JunctionStatistics) (heldX: torch.Tensor) (heldY: torch.Tensor) : GrowthEvent =
    let fixedAmplitude = proposal.Amplitude.HasValue && proposal.Count > 0
    let gamma, loss, loss0 =
        if fixedAmplitude then
            let lossAt = candidateLoss net j proposal statistics heldX heldY
            proposal.Amplitude.Value, lossAt proposal.Amplitude.Value, lossAt 0.0
        else lineSearch (candidateLoss net j proposal statistics heldX heldY) 24
    // A decrease within rounding of the loss (float32: ~1e-7 relative) is noise, not a reason to
    // add neurons: below this margin γ = 0 wins.
    let gamma, loss = if fixedAmplitude || loss0 - loss > acceptanceMargin * abs loss0 then gamma, loss else 0.0, loss0
    if gamma > 0.0 then commit (apply net j proposal statistics gamma)
    { Junction = j
      Added = (if gamma > 0.0 then proposal.Count else 0)
      Gamma = gamma
      PredictedDecrease = proposal.PredictedDecrease gamma
      MeasuredDecrease = loss0 - loss
      Bottleneck = proposal.Bottleneck
      Width = net.Junctions[j].A.OutputWidth }

/// Room left in junction j (its A layer may not exceed the junction's MaxWidth).
let room (net: Network) (j: int) = max 0 (net.Junctions[j].MaxWidth - net.Junctions[j].A.OutputWidth)

/// Parameters that K new neurons of junction j would add.
let private addedParameters (net: Network) (j: int) (k: int) = int64 k * net.Junctions[j].ParametersPerNeuron

/// Selection "best": the largest first-order decrease from new neurons per added parameter, among
/// proposals that add neurons (δ adds no parameters and would win any ratio); δ alone only when
/// no junction proposes a neuron. `added j k` is the parameter count of k neurons at junction j.
let bestProposal (added: int -> int -> int64) (proposals: (int * NeuronProposal) list) : int * NeuronProposal =
    let adding = proposals |> List.filter (fun (_, p) -> p.Count > 0)
    if adding.IsEmpty then proposals |> List.maxBy (fun (_, p) -> p.PredictedDecrease 1.0)
    else adding |> List.maxBy (fun (j, p) -> p.ActivationSlope * Array.sum p.NeuronScores / float (added j p.Count))

/// Growth step `stepIndex` (0, 1, …) over the junctions chosen by options.Selection: "all" of them
/// in order, the "best" one, or one in turn ("roundrobin"). Statistics come from (statsX, statsY),
/// γ is searched on the disjoint (heldX, heldY).
let step (net: Network) (strategy: IGrowthStrategy) (options: GrowthOptions) (generator: torch.Generator | null) (stepIndex: int)
         (statsX: torch.Tensor) (statsY: torch.Tensor) (heldX: torch.Tensor) (heldY: torch.Tensor) : GrowthEvent list =
    let growable = [ for j in 0 .. net.JunctionCount - 1 do if room net j > 0 then yield j ]
    if growable.IsEmpty then []
    else
        // Statistics of the junctions `js` as a map from junction to its statistics.
        let pass (js: int list) =
            let stats = statisticsFor (List.toArray js) options.RowsPerDimension generator net statsX statsY 256L
            Map.ofList (List.zip js (Array.toList stats))
        let release (stats: Map<int, JunctionStatistics>) = stats |> Map.iter (fun _ s -> s.Dispose ())
        let propose (stats: Map<int, JunctionStatistics>) j =
            strategy.Propose (GrowthRequest (stats[j], net.Junctions[j], min options.NeuronsPerStep (room net j), options, generator))
        match options.Selection with
        | "best" ->
            let stats = pass growable
            try
                let proposals = growable |> List.map (fun j -> j, propose stats j)
                try
                    let j, best = bestProposal (fun j k -> addedParameters net j k) proposals
                    [ growJunction net j best stats[j] heldX heldY ]
                finally
                    proposals |> List.iter (fun (_, p) -> p.Dispose ())
            finally
                release stats
        | selection ->
            let chosen = if selection = "roundrobin" then [ growable[stepIndex % growable.Length] ] else growable
            // Junctions in order. Once a junction has changed the network, the statistics of the
            // junctions still to grow are taken again (only theirs): they must describe the network
            // being grown, or the prediction and the measured decrease are not comparable.
            let mutable stats = None
            try
                [ for j in chosen do
                    let current =
                        match stats with
                        | Some s -> s
                        | None ->
                            let s = pass (chosen |> List.filter (fun c -> c >= j))
                            stats <- Some s
                            s
                    use proposal = propose current j
                    let event = growJunction net j proposal current[j] heldX heldY
                    if event.Gamma > 0.0 then
                        stats <- None
                        release current
                    yield event ]
            finally
                stats |> Option.iter release
