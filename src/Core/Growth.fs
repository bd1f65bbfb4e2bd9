/// One growth step (DESIGN §3), the stages in order: the statistics pass (StatisticsPass) → proposals
/// from the strategy, checked (ProposalCheck) and adapted to the new units (NewUnits) → where to grow
/// (Selection) → amplitude γ by line search on held-out samples (GammaSearch) → apply (Candidate).
/// Each stage is a function of values; the input whitening of junctions that read the input is kept
/// for the run (InputWhitening).
module TinyGrow.Core.Growth

open System
open TorchSharp
open TorchSharp.Modules
open TinyGrow.Abstractions

/// What a junction's growth needs besides its statistics: the input covariance kept for the run
/// (`cached j`, see `inputCovariance`), where its γ search starts (`gammaStart j`, see
/// lineSearchFrom; NaN: cold), the start it may borrow instead (`borrowedStart j`, see GammaSearch.startOf;
/// NaN: nothing), the strategy, the options, and the held-out samples of the γ search.
type GrowthContext =
    { Cached: int -> InputWhitening.InputCovariance option
      GammaStart: int -> float
      BorrowedStart: int -> float
      Strategy: IGrowthStrategy
      Options: GrowthOptions
      Generator: torch.Generator | null
      HeldX: torch.Tensor
      HeldY: torch.Tensor
      /// Called (junction name, seconds so far) every StillProposingEvery while a strategy call runs.
      StillProposing: string -> float -> unit
      StillProposingEvery: TimeSpan
      /// A stop asked (SIGTERM, Ctrl-C): the step is abandoned between junctions and during a strategy
      /// call, nothing more applied; the run's last checkpoint (before the step) is its consistent state.
      Cancellation: Threading.CancellationToken
      /// Whether the γ search's samples are kept while the strategy proposes (ComputeThreads.spareBeside: the
      /// two then run on cores of their own; the same values either way).
      KeepWhileProposing: bool }

let private timed (f: unit -> 'T) =
    let clock = Diagnostics.Stopwatch.StartNew ()
    let r = f ()
    r, clock.Elapsed.TotalSeconds

/// The strategy's proposal for junction j from its statistics, checked against the contract
/// (ProposalCheck: a fault stops the run before anything is applied), adapted to the configured new
/// units (NewUnits: at a junction with a normalisation, unit-scale features with a refitted fan-out).
/// `meanwhile ()` runs on this thread while the strategy proposes on a worker (ProposalCheck.proposeWhile).
let proposeWhile (context: GrowthContext) (net: Network) (stats: Map<int, JunctionStatistics>) (j: int) (meanwhile: unit -> 'M) : NeuronProposal * 'M =
    let whitening : torch.Tensor | null = match context.Cached j with Some c -> c.Whitening | None -> null
    let request = GrowthRequest (stats[j], net.Junctions[j], min context.Options.NeuronsPerStep (Selection.room net j), context.Options,
                                 context.Generator, Whitening = whitening)
    let proposal, alongside =
        ProposalCheck.proposeWhile context.Strategy request (float context.Options.StrategyTimeoutSeconds) context.StillProposingEvery
                                   (context.StillProposing net.Junctions[j].Name) context.Cancellation meanwhile
    try ProposalCheck.check context.Strategy request proposal
    with _ ->
        proposal.Dispose ()
        reraise ()
    match NewUnits.adapt context.Options net.Junctions[j] stats[j] proposal with
    | Some unit ->
        proposal.Dispose ()
        unit, alongside
    | None -> proposal, alongside

/// proposeWhile with nothing to do meanwhile.
let propose (context: GrowthContext) (net: Network) (stats: Map<int, JunctionStatistics>) (j: int) : NeuronProposal =
    fst (proposeWhile context net stats j ignore)

/// Whether junction k's statistics, taken before junction j grew, still have k's shapes: j shares no layer with k.
/// A junction's growth widens A's outputs and B's inputs, so a layer of k that is j's A or B changes k's b (A's
/// input), b̃ (B's input) or B's output; an MLP's or a CNN's next junction shares one, a ResNet's other blocks none.
let unaffectedBy (net: Network) (j: int) (k: int) =
    let grown, other = net.Junctions[j], net.Junctions[k]
    let same (x: IGrowableLayer) (y: IGrowableLayer) = obj.ReferenceEquals (x, y)
    j <> k && not (same grown.A other.A || same grown.A other.B || same grown.B other.A || same grown.B other.B)

/// Junction j proposed, searched and (γ > 0) applied; the event carries `statisticsSeconds` and the solve time.
/// With KeepWhileProposing the γ search's held-out samples are kept (a probe forward of the network as it is,
/// which the proposal does not change) while the strategy proposes: the solve time then includes that forward.
let growOne (context: GrowthContext) (net: Network) (stats: Map<int, JunctionStatistics>) (statisticsSeconds: float) (j: int) : GammaSearch.GrowthEvent =
    context.Cancellation.ThrowIfCancellationRequested ()
    // The kept samples go with this scope; what the search applies outlives it (GammaSearch.growJunctionTested).
    use searchScope = torch.NewDisposeScope ()
    let keep () = CandidateLoss.keepSearchSamples net j context.HeldX context.HeldY
    let proposal, alongside, solveSeconds =
        if context.KeepWhileProposing then
            let (proposal, samples), seconds = timed (fun () -> proposeWhile context net stats j keep)
            proposal, Some samples, seconds
        else
            let proposal, seconds = timed (fun () -> propose context net stats j)
            proposal, None, seconds
    use proposal = proposal
    let samples, keepSeconds = match alongside with Some s -> s, 0.0 | None -> timed keep
    let e = GammaSearch.growJunctionOn context.Options.AcceptanceZ context.Options.SlopeProbe (context.GammaStart j) (context.BorrowedStart j) context.Options.AmplitudeSpread net j proposal stats[j] samples
    { e with StatisticsSeconds = statisticsSeconds; SolveSeconds = solveSeconds; SearchSeconds = keepSeconds + e.SearchSeconds }

/// Selection "best": every junction of `stats` proposes; the best one (bestProposal) is searched and applied.
let growBest (context: GrowthContext) (net: Network) (stats: Map<int, JunctionStatistics>) (statisticsSeconds: float) : GammaSearch.GrowthEvent =
    context.Cancellation.ThrowIfCancellationRequested ()
    let junctions = stats |> Map.toList |> List.map fst
    let proposals, solveSeconds = timed (fun () -> junctions |> List.map (fun j -> j, propose context net stats j))
    try
        let j, best = Selection.bestProposal (fun j k -> Selection.addedParameters net j k) proposals
        let e = GammaSearch.growJunctionTested context.Options.AcceptanceZ context.Options.SlopeProbe (context.GammaStart j) (context.BorrowedStart j) context.Options.AmplitudeSpread net j best stats[j] context.HeldX context.HeldY
        { e with StatisticsSeconds = statisticsSeconds; SolveSeconds = solveSeconds }
    finally
        proposals |> List.iter (fun (_, p) -> p.Dispose ())

/// Releases a step's statistics.
let release (stats: Map<int, JunctionStatistics>) = stats |> Map.iter (fun _ s -> s.Dispose ())

/// Growth step `stepIndex` (0, 1, …) over the junctions chosen by options.Selection: "all" of them
/// in order, the "best" one, or one in turn ("roundrobin"). Statistics come from a separate pass over
/// (statsX, statsY), γ is searched on the disjoint (context.HeldX, context.HeldY).
let stepIn (context: GrowthContext) (net: Network) (stepIndex: int) (statsX: torch.Tensor) (statsY: torch.Tensor) : GammaSearch.GrowthEvent list =
    let chosen = Selection.chosenJunctions net context.Options stepIndex
    // Statistics of the junctions `js` as a map from junction to its statistics, and the pass's seconds.
    let pass (js: int list) =
        let groups = StatisticsPass.significanceGroups context.Options
        // A significance test needs groups of batches: batches small enough that there are `groups` of them.
        let batch = if groups > 0 then max 1L (min 256L (statsX.shape[0] / int64 groups)) else 256L
        let givenS2 j : torch.Tensor | null = match context.Cached j with Some c -> c.S2 | None -> null
        let stats, seconds =
            timed (fun () -> StatisticsPass.statisticsSampled (fun j -> NewUnits.sampleRowsFor context.Options net.Junctions[j]) (context.Options.CrossValidationRows > 0) givenS2 groups (List.toArray js) context.Options.RowsPerDimension context.Generator net statsX statsY batch)
        Map.ofList (List.zip js (Array.toList stats)), seconds
    if chosen.IsEmpty then []
    elif context.Options.Selection = "best" then
        let stats, seconds = pass chosen
        try [ growBest context net stats seconds ]
        finally release stats
    else
        // Junctions in order. Once a junction has changed the network, the statistics of the
        // junctions still to grow are taken again (only theirs): they must describe the network
        // being grown, or the prediction and the measured decrease are not comparable. With shared
        // statistics only when it widened one of them.
        let mutable stats = None
        try
            [ for j in chosen do
                let current, seconds =
                    match stats with
                    | Some s -> s, 0.0
                    | None ->
                        let s, seconds = pass (chosen |> List.filter (fun c -> c >= j))
                        stats <- Some s
                        s, seconds
                let event = growOne context net current seconds j
                // Shared statistics (Growth:SharedStatistics) are taken again only for a junction this one widened.
                let stale = not context.Options.SharedStatistics || chosen |> List.exists (fun c -> c > j && not (unaffectedBy net j c))
                if event.Gamma > 0.0 && stale then
                    stats <- None
                    release current
                yield event ]
        finally
            stats |> Option.iter release

/// A growth step with no whitening computed ahead.
let step (net: Network) (strategy: IGrowthStrategy) (options: GrowthOptions) (generator: torch.Generator | null) (stepIndex: int)
         (statsX: torch.Tensor) (statsY: torch.Tensor) (heldX: torch.Tensor) (heldY: torch.Tensor) : GammaSearch.GrowthEvent list =
    let context = { Cached = (fun _ -> None); GammaStart = (fun _ -> nan); BorrowedStart = (fun _ -> nan); Strategy = strategy; Options = options; Generator = generator; HeldX = heldX; HeldY = heldY
                    StillProposing = (fun _ _ -> ()); StillProposingEvery = TimeSpan.FromSeconds 15.0
                    Cancellation = Threading.CancellationToken.None; KeepWhileProposing = false }
    stepIn context net stepIndex statsX statsY
