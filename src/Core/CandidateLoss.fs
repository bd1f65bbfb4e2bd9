/// How the γ search measures a candidate (DESIGN §4.6): the held-out samples kept from one probe forward of the
/// network as it is (L(0) and, per chunk, where a candidate's forward can resume), and the loss of a candidate at γ
/// from there: from A on (a candidate only appends A's outputs), or, for a unit proposal, from B's output on (its
/// change at B is linear in γ). GammaSearch decides γ from these losses.
module TinyGrow.Core.CandidateLoss

open System
open TorchSharp
open TinyGrow.Abstractions

/// Loss on the held-out samples with the candidate (j, proposal, γ) applied, then undone.
let candidateLoss (net: Network) (j: int) (proposal: NeuronProposal) (statistics: JunctionStatistics) (heldX: torch.Tensor) (heldY: torch.Tensor) (gamma: float) =
    use scope = torch.NewDisposeScope () // the candidate's temporaries go with it
    let applied = Candidate.apply net j proposal statistics gamma
    try Training.probeLoss net heldX heldY
    finally Candidate.undo applied

/// The γ search's held-out samples, in Training.probeLoss's chunks, each with its resume point at
/// the junction: one probe forward of the network as it is keeps them (its loss is L(0)), and every
/// candidate is then evaluated from A on, A computing only the channels the candidate appends.
/// Nothing before A depends on the candidate, so each loss is the one probeLoss would measure, to
/// float32 rounding (the kept channels came from a GEMM with fewer rows; SearchResumeTests).
/// The tensors live in the dispose scope the samples were kept in (one per search).
type SearchSamples =
    { Points: ResumePoint[]
      Labels: torch.Tensor[]
      Count: int64
      /// Loss of the network as it is (γ = 0).
      Loss0: float
      /// Per-sample losses of the network as it is (float64), for a paired test against a candidate's.
      Losses0: float[] }

/// Per-sample cross-entropy of a chunk as float64 values.
let private perSampleLosses (logits: torch.Tensor) (labels: torch.Tensor) =
    use losses = torch.nn.functional.cross_entropy (logits, labels, reduction = torch.nn.Reduction.None)
    use wide = losses.to_type torch.ScalarType.Float64
    wide.data<float>().ToArray ()

/// Keeps junction j's search samples (and L(0)) from one probe forward of (heldX, heldY).
let keepSearchSamples (net: Network) (j: int) (heldX: torch.Tensor) (heldY: torch.Tensor) : SearchSamples =
    use _ = torch.no_grad ()
    let n = heldX.shape[0]
    if n = 0L then invalidArg (nameof heldX) "The γ search needs held-out samples (Growth:GammaSearchSamples ≥ 1 and a training split larger than the statistics samples)."
    let mutable lossSum = 0.0
    let kept =
        [| for start, count in Training.probeChunks n do
             let logits, point = net.ForwardKeeping (heldX.narrow (0L, start, count), j, ForwardPass.Probe)
             let labels = heldY.narrow (0L, start, count)
             lossSum <- lossSum + Training.crossEntropySum logits labels
             yield point, labels, perSampleLosses logits labels |]
    { Points = kept |> Array.map (fun (p, _, _) -> p); Labels = kept |> Array.map (fun (_, l, _) -> l); Count = n
      Loss0 = lossSum / float n; Losses0 = kept |> Array.collect (fun (_, _, l) -> l) }

/// A unit proposal's change of B's pre-activation output per unit γ, one tensor per chunk of kept search
/// samples. A unit proposal (FanOutAmplitude) changes nothing before B and B's output linearly in γ,
/// Z(γ) = Z(0) + γ·PerGamma, so every γ is evaluated from B's output on (IResumableAfterB), without A and B:
/// on the Fashion-MNIST CNN the first junction's A and B run at 28×28 and 14×14, most of an evaluation.
type LinearChange = { Outputs0: torch.Tensor[]; PerGamma: torch.Tensor[] }

/// A scaled proposal's change of B's pre-activation output, per chunk of kept search samples, on a block that splits
/// B's output by input channel (IResumableAppendedB). γ scales A's new rows too, so nothing is linear in γ; but what
/// A's existing channels contribute changes only through δ (W_B ← W_B − γ²δ): Z(γ) = Z(0) + γ²·PerGammaSquared +
/// what A's channels from `First` on contribute at γ. An evaluation then computes A's new rows and B's columns for
/// them, where the forward from A (ForwardFrom) computes σ over every channel of A and B's whole product: on the
/// default run's first junction (784 → 224 → 89 → 10, tanh, 512 samples) 0.3 ms where it took 1.1 ms.
type SplitChange = { Outputs0: torch.Tensor[]; PerGammaSquared: torch.Tensor[]; First: int }

/// How the γ search evaluates a candidate from B's output on (None: the forward from A, with the candidate applied).
type BChange =
    /// A unit proposal: Z(γ) = Z(0) + γ·PerGamma.
    | Linear of LinearChange
    /// A scaled proposal: Z(γ) = Z(0) + γ²·PerGammaSquared + the appended channels' part at γ.
    | Split of SplitChange

/// Junctions whose block's IResumableAfterB was checked against its forward in this process (see linearChange).
let private checkedAfterB = Runtime.CompilerServices.ConditionalWeakTable<IJunction, string> ()

/// How far (relative) the loss resumed after B may be from the loss of the block's own forward before the block
/// is a plugin fault: float32 rounding is ~1e-6 at γ = 1 (SearchResumeTests); a wrong resume is far off.
let afterBTolerance = 1e-4

/// `ofChunk logits labels` for every chunk of kept search samples with the candidate at γ: from B's output on
/// when its LinearChange is given, else with the candidate applied (then undone) by the forward from A on,
/// without the layers before A nor A's existing channels.
let private overCandidate (net: Network) (samples: SearchSamples) (proposal: NeuronProposal) (statistics: JunctionStatistics)
                          (change: BChange option) (gamma: float) (ofChunk: torch.Tensor -> torch.Tensor -> 'T) : 'T[] =
    use _ = torch.no_grad ()
    use scope = torch.NewDisposeScope ()
    match change with
    | Some (Linear change) ->
        [| for i in 0 .. samples.Points.Length - 1 do
             use chunk = torch.NewDisposeScope ()
             let point = samples.Points[i]
             let z = change.Outputs0[i].add (change.PerGamma[i], gamma.ToScalar ())
             yield ofChunk (net.ForwardAfterB (point, z, ForwardPass.Probe)) samples.Labels[i] |]
    | Some (Split change) ->
        let applied = Candidate.apply net samples.Points[0].Junction proposal statistics gamma
        try
            [| for i in 0 .. samples.Points.Length - 1 do
                 use chunk = torch.NewDisposeScope ()
                 let point = samples.Points[i]
                 // A new tensor: the block's output is added in, never written to.
                 let z = change.Outputs0[i].add (change.PerGammaSquared[i], (gamma * gamma).ToScalar ())
                 z.add_ (net.BOutputOfAppended (point, change.First, ForwardPass.Probe)) |> ignore
                 yield ofChunk (net.ForwardAfterB (point, z, ForwardPass.Probe)) samples.Labels[i] |]
        finally Candidate.undo applied
    | None ->
        let applied = Candidate.apply net samples.Points[0].Junction proposal statistics gamma
        try
            [| for point, labels in Array.zip samples.Points samples.Labels do
                 use chunk = torch.NewDisposeScope ()
                 yield ofChunk (net.ForwardFrom (point, ForwardPass.Probe)) labels |]
        finally Candidate.undo applied

/// candidateLoss from kept search samples (and the proposal's change at B, if any: bChange): the same loss to rounding.
let candidateLossWith (change: BChange option) (net: Network) (samples: SearchSamples) (proposal: NeuronProposal) (statistics: JunctionStatistics) (gamma: float) =
    Array.sum (overCandidate net samples proposal statistics change gamma Training.crossEntropySum) / float samples.Count

/// Samples of the first chunk the plugin check of linearChange compares on: a wrong resume is far off on any of
/// them, and on ResNet-20 (a full forward ~1 ms a sample here) checking all 512 search samples cost two
/// evaluations per junction, 9 s of a 53 s growth on the short protocol.
let resumeCheckSamples = 64L

/// The mean loss with the candidate at γ on the first resumeCheckSamples samples of the first chunk, through the
/// block's own forward and resumed after B from `bOutputOf sub first` (B's output on the narrowed point `sub`, with
/// the candidate applied; `first` narrows a kept per-chunk tensor to the same samples): equal when the block's
/// resume matches its Forward. Both run on that one batch from the kept block input (BatchNorm statistics over the
/// same samples on both sides); A's kept output is per sample, so narrowing it is exact.
let private resumeCheckLosses (net: Network) (samples: SearchSamples) (proposal: NeuronProposal) (statistics: JunctionStatistics) (gamma: float)
                              (bOutputOf: ResumePoint -> (torch.Tensor -> torch.Tensor) -> torch.Tensor) =
    use _ = torch.no_grad ()
    use scope = torch.NewDisposeScope ()
    let point = samples.Points[0]
    let m = min resumeCheckSamples point.AInput.shape[0]
    let first (t: torch.Tensor) = t.narrow (0L, 0L, m)
    let sub = { point with BlockInput = first point.BlockInput; AInput = first point.AInput
                           AOutput = (match point.AOutput with NonNull a -> first a | Null -> null)
                           BOutput = (match point.BOutput with NonNull b -> first b | Null -> null) }
    let labels = first samples.Labels[0]
    let applied = Candidate.apply net point.Junction proposal statistics gamma
    try
        let own = Training.crossEntropySum (net.ForwardFrom (sub, ForwardPass.Probe)) labels
        let resumed = Training.crossEntropySum (net.ForwardAfterB (sub, bOutputOf sub first, ForwardPass.Probe)) labels
        own / float m, resumed / float m
    finally Candidate.undo applied

/// Checks a block plugin's resume after B once per junction and process (`checkedIn`; see linearChange): raises
/// PluginFaultException naming the block, the junction and `contract` when the loss resumed from
/// `bOutputOf` (resumeCheckLosses) is not the block's own forward's at γ; `release` frees the change first.
let private checkResumeOnce (checkedIn: Runtime.CompilerServices.ConditionalWeakTable<IJunction, string>) (contract: string)
                            (net: Network) (samples: SearchSamples) (proposal: NeuronProposal) (statistics: JunctionStatistics) (gamma: float)
                            (bOutputOf: ResumePoint -> (torch.Tensor -> torch.Tensor) -> torch.Tensor) (release: unit -> unit) =
    let junction = net.Junctions[samples.Points[0].Junction]
    let seen, _ = checkedIn.TryGetValue junction
    if not seen then
        let own, resumed = resumeCheckLosses net samples proposal statistics gamma bOutputOf
        if not (abs (resumed - own) <= afterBTolerance * abs own) then
            let block = net.Blocks[samples.Points[0].Block]
            let assembly = block.GetType().Assembly.GetName ()
            release ()
            raise (ProposalCheck.PluginFaultException
                     $"Block '{block.Kind}' ({assembly.Name} {assembly.Version}) resumes junction {junction.Name} after its B ({contract}) to a loss of {resumed:g6} at γ = {gamma} where its own forward gives {own:g6}: {contract} does not match the block's Forward. Nothing was applied; the last checkpoint is the run's state before this step. Fix the block plugin (or remove {contract} from it: the γ search then runs its forward).")
        checkedIn.AddOrUpdate (junction, "checked")

/// The proposal's LinearChange on the kept samples (one forward of A and B with the candidate at γ = 1,
/// less the kept Z(0)), or None when the proposal is not a unit one or a chunk's block cannot resume after B.
/// The tensors go to the caller's dispose scope. ΔZ is a difference of two float32 outputs, so Z(γ) carries
/// a rounding of about γ·u₃₂·|Z| where the full forward has u₃₂·|Z| (SearchResumeTests bounds the loss).
/// A block is a plugin: the first time a junction resumes after B in a process, the loss at γ = 1 from B's
/// output is compared with the loss of the block's own forward (ForwardFrom; resumeCheckLosses), and a block whose
/// resume does not match stops the run (PluginFaultException) instead of steering every γ search wrong without a word.
let linearChange (net: Network) (samples: SearchSamples) (proposal: NeuronProposal) (statistics: JunctionStatistics) : LinearChange option =
    let outputs0 = samples.Points |> Array.choose (fun p -> match p.BOutput with NonNull z -> Some z | _ -> None)
    if not proposal.FanOutAmplitude || proposal.Count = 0 || outputs0.Length <> samples.Points.Length then None
    else
        let change =
            use _ = torch.no_grad ()
            let applied = Candidate.apply net samples.Points[0].Junction proposal statistics 1.0
            try
                { Outputs0 = outputs0
                  PerGamma =
                    [| for point, z0 in Array.zip samples.Points outputs0 do
                         use chunk = torch.NewDisposeScope ()
                         let atOne = net.BOutputFrom (point, ForwardPass.Probe)
                         yield (atOne.sub z0).MoveToOuterDisposeScope () |] }
            finally Candidate.undo applied
        checkResumeOnce checkedAfterB "IResumableAfterB" net samples proposal statistics 1.0
                        (fun sub _ -> net.BOutputFrom (sub, ForwardPass.Probe))
                        (fun () -> change.PerGamma |> Array.iter (fun t -> t.Dispose ()))
        Some change

/// Junctions whose block's IResumableAppendedB was checked against its forward in this process (see splitChange).
let private checkedAppended = Runtime.CompilerServices.ConditionalWeakTable<IJunction, string> ()

/// The γ at which splitChange measures PerGammaSquared: ((Z(g) − appended(g)) − Z(0)) / g², a difference of float32
/// outputs whose rounding u₃₂·(|Z| + g²|ΔZ_δ|)/g² reaches Z(γ) as (γ/g)²·u₃₂|Z| + γ²u₃₂|ΔZ_δ|: for γ ≤ g below the
/// full forward's own u₃₂·(|Z| + γ²|ΔZ_δ|) (at g = 1 it would grow as γ²·u₃₂|Z|). Scaled proposals' γ stay below 8 on
/// the shipped experiments (their amplitude bound).
let splitReference = 8.0

/// The γ at which a block's IResumableAppendedB is checked against its forward: neither 0 nor splitReference, where
/// the decomposition holds by construction.
let splitCheckGamma = 2.0

/// The proposal's SplitChange on the kept samples (one forward of A and B with the candidate at γ = splitReference),
/// or None when the proposal is a unit one (linearChange) or has a fixed amplitude, or the block does not split B
/// (IResumableAppendedB) or keep its output. The tensors go to the caller's dispose scope. A block is a plugin: the
/// first time a junction's search splits B in a process, the loss at γ = splitCheckGamma from the split is compared
/// with the block's own forward, as linearChange does.
let splitChange (net: Network) (samples: SearchSamples) (proposal: NeuronProposal) (statistics: JunctionStatistics) : SplitChange option =
    let outputs0 = samples.Points |> Array.choose (fun p -> match p.BOutput with NonNull z -> Some z | _ -> None)
    if proposal.FanOutAmplitude || proposal.Amplitude.HasValue || outputs0.Length <> samples.Points.Length || not (net.SplitsB samples.Points[0]) then None
    else
        let first = net.Junctions[samples.Points[0].Junction].A.OutputWidth
        let change =
            use _ = torch.no_grad ()
            let applied = Candidate.apply net samples.Points[0].Junction proposal statistics splitReference
            try
                { Outputs0 = outputs0
                  First = first
                  PerGammaSquared =
                    [| for point, z0 in Array.zip samples.Points outputs0 do
                         use chunk = torch.NewDisposeScope ()
                         let whole = net.BOutputFrom (point, ForwardPass.Probe)
                         let appended = net.BOutputOfAppended (point, first, ForwardPass.Probe)
                         yield (whole.sub(appended).sub_(z0).div_ ((splitReference * splitReference).ToScalar ())).MoveToOuterDisposeScope () |] }
            finally Candidate.undo applied
        let g2 = splitCheckGamma * splitCheckGamma
        checkResumeOnce checkedAppended "IResumableAppendedB" net samples proposal statistics splitCheckGamma
                        (fun sub narrow ->
                            let z = (narrow change.Outputs0[0]).add (narrow change.PerGammaSquared[0], g2.ToScalar ())
                            z.add_ (net.BOutputOfAppended (sub, first, ForwardPass.Probe)))
                        (fun () -> change.PerGammaSquared |> Array.iter (fun t -> t.Dispose ()))
        Some change

/// How the γ search evaluates the proposal from B's output on: linearChange for a unit proposal, splitChange for a
/// scaled one, None (the forward from A) when neither applies.
let bChange (net: Network) (samples: SearchSamples) (proposal: NeuronProposal) (statistics: JunctionStatistics) : BChange option =
    match linearChange net samples proposal statistics with
    | Some change -> Some (Linear change)
    | None -> splitChange net samples proposal statistics |> Option.map Split

/// candidateLossWith, the candidate applied at every γ.
let candidateLossFrom (net: Network) (samples: SearchSamples) (proposal: NeuronProposal) (statistics: JunctionStatistics) (gamma: float) =
    candidateLossWith None net samples proposal statistics gamma

/// Per-sample held-out losses (float64) at γ, from kept search samples: the losses whose mean candidateLossWith
/// gives (SearchSamples.Losses0 are those at γ = 0).
let candidateLossesWith (change: BChange option) (net: Network) (samples: SearchSamples) (proposal: NeuronProposal) (statistics: JunctionStatistics) (gamma: float) : float[] =
    Array.concat (overCandidate net samples proposal statistics change gamma perSampleLosses)
