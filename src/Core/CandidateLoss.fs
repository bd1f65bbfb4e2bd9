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

/// Junctions whose block's IResumableAfterB was checked against its forward in this process (see linearChange).
let private checkedAfterB = Runtime.CompilerServices.ConditionalWeakTable<IJunction, string> ()

/// How far (relative) the loss resumed after B may be from the loss of the block's own forward before the block
/// is a plugin fault: float32 rounding is ~1e-6 at γ = 1 (SearchResumeTests); a wrong resume is far off.
let afterBTolerance = 1e-4

/// `ofChunk logits labels` for every chunk of kept search samples with the candidate at γ: from B's output on
/// when its LinearChange is given, else with the candidate applied (then undone) by the forward from A on,
/// without the layers before A nor A's existing channels.
let private overCandidate (net: Network) (samples: SearchSamples) (proposal: NeuronProposal) (statistics: JunctionStatistics)
                          (change: LinearChange option) (gamma: float) (ofChunk: torch.Tensor -> torch.Tensor -> 'T) : 'T[] =
    use _ = torch.no_grad ()
    use scope = torch.NewDisposeScope ()
    match change with
    | Some change ->
        [| for i in 0 .. samples.Points.Length - 1 do
             use chunk = torch.NewDisposeScope ()
             let point = samples.Points[i]
             let z = change.Outputs0[i].add (change.PerGamma[i], gamma.ToScalar ())
             yield ofChunk (net.ForwardAfterB (point, z, ForwardPass.Probe)) samples.Labels[i] |]
    | None ->
        let applied = Candidate.apply net samples.Points[0].Junction proposal statistics gamma
        try
            [| for point, labels in Array.zip samples.Points samples.Labels do
                 use chunk = torch.NewDisposeScope ()
                 yield ofChunk (net.ForwardFrom (point, ForwardPass.Probe)) labels |]
        finally Candidate.undo applied

/// candidateLoss from kept search samples (and the proposal's LinearChange, if any): the same loss to rounding.
let candidateLossWith (change: LinearChange option) (net: Network) (samples: SearchSamples) (proposal: NeuronProposal) (statistics: JunctionStatistics) (gamma: float) =
    Array.sum (overCandidate net samples proposal statistics change gamma Training.crossEntropySum) / float samples.Count

/// Samples of the first chunk the plugin check of linearChange compares on: a wrong resume is far off on any of
/// them, and on ResNet-20 (a full forward ~1 ms a sample here) checking all 512 search samples cost two
/// evaluations per junction, 9 s of a 53 s growth on the short protocol.
let resumeCheckSamples = 64L

/// The mean loss with the candidate at γ = 1 on the first resumeCheckSamples samples of the first chunk, through the
/// block's own forward and resumed after B (BOutputFrom then ForwardAfterB): equal when the block's
/// IResumableAfterB matches its Forward. Both run on that one batch from the kept block input (BatchNorm statistics
/// over the same samples on both sides); A's kept output is per sample, so narrowing it is exact.
let private resumeCheckLosses (net: Network) (samples: SearchSamples) (proposal: NeuronProposal) (statistics: JunctionStatistics) =
    use _ = torch.no_grad ()
    use scope = torch.NewDisposeScope ()
    let point = samples.Points[0]
    let m = min resumeCheckSamples point.AInput.shape[0]
    let first (t: torch.Tensor) = t.narrow (0L, 0L, m)
    let sub = { point with BlockInput = first point.BlockInput; AInput = first point.AInput
                           AOutput = (match point.AOutput with NonNull a -> first a | Null -> null)
                           BOutput = (match point.BOutput with NonNull b -> first b | Null -> null) }
    let labels = first samples.Labels[0]
    let applied = Candidate.apply net point.Junction proposal statistics 1.0
    try
        let own = Training.crossEntropySum (net.ForwardFrom (sub, ForwardPass.Probe)) labels
        let resumed = Training.crossEntropySum (net.ForwardAfterB (sub, net.BOutputFrom (sub, ForwardPass.Probe), ForwardPass.Probe)) labels
        own / float m, resumed / float m
    finally Candidate.undo applied

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
        let junction = net.Junctions[samples.Points[0].Junction]
        let seen, _ = checkedAfterB.TryGetValue junction
        if not seen then
            let own, resumed = resumeCheckLosses net samples proposal statistics
            if not (abs (resumed - own) <= afterBTolerance * abs own) then
                let block = net.Blocks[samples.Points[0].Block]
                let assembly = block.GetType().Assembly.GetName ()
                change.PerGamma |> Array.iter (fun t -> t.Dispose ())
                raise (ProposalCheck.PluginFaultException
                         $"Block '{block.Kind}' ({assembly.Name} {assembly.Version}) resumes junction {junction.Name} after its B (IResumableAfterB) to a loss of {resumed:g6} where its own forward gives {own:g6}: BOutputFrom or ForwardAfterB does not match the block's Forward. Nothing was applied; the last checkpoint is the run's state before this step. Fix the block plugin (or remove IResumableAfterB from it: the γ search then runs its forward).")
            checkedAfterB.AddOrUpdate (junction, "checked")
        Some change

/// candidateLossWith, the candidate applied at every γ.
let candidateLossFrom (net: Network) (samples: SearchSamples) (proposal: NeuronProposal) (statistics: JunctionStatistics) (gamma: float) =
    candidateLossWith None net samples proposal statistics gamma

/// Per-sample held-out losses (float64) at γ, from kept search samples: the losses whose mean candidateLossWith
/// gives (SearchSamples.Losses0 are those at γ = 0).
let candidateLossesWith (change: LinearChange option) (net: Network) (samples: SearchSamples) (proposal: NeuronProposal) (statistics: JunctionStatistics) (gamma: float) : float[] =
    Array.concat (overCandidate net samples proposal statistics change gamma perSampleLosses)
