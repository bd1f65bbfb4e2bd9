/// What every junction kind shares: drawing the statistics rows, trailing ones for biases, and
/// applying a proposal (A gains rows, its normalisation grows, B gains columns, δ) so that it can
/// be undone by loading the old tensors back.
module TinyGrow.Core.Junctions

open TorchSharp
open TorchSharp.Modules
open TinyGrow.Abstractions

type Tensor = torch.Tensor

/// Rows to keep out of `total`: all (None, weight 1) when maxRows is 0 or not smaller; else
/// `maxRows` drawn without replacement, each standing for total/maxRows rows.
let sampleRows (total: int64) (maxRows: int64) (generator: torch.Generator | null) (device: torch.Device) : Tensor option * float =
    if maxRows <= 0L || total <= maxRows then None, 1.0
    else
        use order = torch.randperm (total, generator = generator)
        use first = order.narrow (0L, 0L, maxRows)
        Some (first.``to`` device), float total / float maxRows

/// Rows [r, d] with a trailing column of ones when the layer has a bias.
let withOnes (hasBias: bool) (rows: Tensor) =
    if hasBias then
        use ones = torch.ones ([| rows.shape[0]; 1L |], dtype = rows.dtype, device = rows.device)
        torch.cat ([| rows; ones |], 1L)
    else rows.alias ()

/// Keeps the rows at `idx` (all when None).
let pick (idx: Tensor option) (rows: Tensor) =
    match idx with
    | Some i -> rows.index_select (0L, i)
    | None -> rows.alias ()

/// Rows of a dense → dense junction (one per sample): b = B's input, b̃ = A's input, g.
let denseRows (a: IGrowableLayer) (b: IGrowableLayer) (record: JunctionRecord) (gradB: Tensor) (maxRows: int64) (generator: torch.Generator | null) =
    use _ = torch.no_grad ()
    let n = record.AInput.shape[0]
    let idx, weight = sampleRows n maxRows generator record.AInput.device
    use scope = torch.NewDisposeScope ()
    let rowsOf hasBias (x: Tensor) = withOnes hasBias (pick idx (x.flatten 1L))
    let bRows = (rowsOf b.HasBias record.BInput).MoveToOuterDisposeScope ()
    let aRows = (rowsOf a.HasBias record.AInput).MoveToOuterDisposeScope ()
    let g = (pick idx (gradB.detach ())).MoveToOuterDisposeScope ()
    idx |> Option.iter (fun t -> t.Dispose ())
    new JunctionRows (bRows, aRows, g, n, weight)

/// Forward through a chain of layers with σ after every layer but the last: each layer's input and
/// output before σ (what junction records hold), and the chain's output.
let chainForward (layers: IGrowableLayer[]) (input: Tensor) : Tensor[] * Tensor[] * Tensor =
    let inputs = Array.zeroCreate layers.Length
    let outputs = Array.zeroCreate layers.Length
    let mutable h = input
    for i in 0 .. layers.Length - 1 do
        inputs[i] <- h
        let z = layers[i].Forward h
        outputs[i] <- z
        h <- if i = layers.Length - 1 then z else layers[i].Activate z
    inputs, outputs, h

/// A's pre-activation output on `input`, reusing `kept` (its first kept.shape[1] channels on the same
/// input, computed before a candidate appended the others) when set: only the new channels are computed.
let outputsReusing (a: IGrowableLayer) (input: Tensor) (kept: Tensor | null) : Tensor =
    match kept with
    | null -> a.Forward input
    | k when k.shape[1] = int64 a.OutputWidth -> k.alias ()
    | k when k.shape[1] < int64 a.OutputWidth -> torch.cat ([| k; a.ForwardOutputs (input, int k.shape[1]) |], 1L)
    | _ -> a.Forward input // fewer outputs than kept: not a candidate's (it only appends); recompute

/// The chain's output with `input` entering layer `start` (what chainForward computes from there on),
/// that layer's existing outputs reused from `kept` (see outputsReusing).
let chainFrom (layers: IGrowableLayer[]) (start: int) (input: Tensor) (kept: Tensor | null) : Tensor =
    let mutable h = input
    for i in start .. layers.Length - 1 do
        let z = if i = start then outputsReusing layers[i] h kept else layers[i].Forward h
        h <- if i = layers.Length - 1 then z else layers[i].Activate z
    h

/// The chain's output when layer `b` has produced the pre-activation output `bOutput` (what chainForward
/// computes from there on).
let chainAfter (layers: IGrowableLayer[]) (b: int) (bOutput: Tensor) : Tensor =
    if b = layers.Length - 1 then bOutput.alias () else chainFrom layers (b + 1) (layers[b].Activate bOutput) null

/// Means and variances of the new channels' inputs z_k = α_kᵀp, from A's patch moments:
/// E z = α·E p, Var z = αᵀ E[ppᵀ] α − (E z)².
let newChannelMoments (fanIn: Tensor) (statistics: JunctionStatistics) =
    match statistics.AMean, statistics.ASecondMoment with
    | null, _ | _, null -> invalidOp "This junction's statistics hold no moments of A's inputs: its normalisation cannot grow."
    | mean, second ->
        use f = fanIn.to_type torch.ScalarType.Float64
        let mu = f.mv mean
        use fs = f.mm second
        use sq = (fs * f).sum 1L
        let var = (sq - mu.square ()).clamp_min (0.0.ToScalar ())
        mu, var

/// The tensors a candidate replaced, to put back (undo) or release (commit).
type internal Replaced =
    | LayerParameters of IGrowableLayer * Parameter[]
    | NormState of IGrowingNorm * Tensor[]

type AppliedGrowth private (replaced: Replaced list) =
    static member None = AppliedGrowth []
    static member internal Of replaced = AppliedGrowth replaced
    interface IAppliedGrowth with
        member _.Undo() =
            for r in replaced do
                match r with
                | LayerParameters (layer, old) ->
                    let candidate = Seq.toArray layer.Parameters
                    layer.Load (old |> Array.map (fun p -> p :> Tensor))
                    candidate |> Array.iter (fun p -> p.Dispose ())
                | NormState (norm, old) ->
                    let candidate = norm.State
                    norm.Load old
                    candidate |> Array.iter (fun t -> t.Dispose ())
        member _.Commit() =
            for r in replaced do
                match r with
                | LayerParameters (_, old) -> old |> Array.iter (fun p -> p.Dispose ())
                | NormState (_, old) -> old |> Array.iter (fun t -> t.Dispose ())

/// Applies `proposal` at γ: W_B ← W_B − γ²δ (when δ is set); B gains columns `fanOutOf (γ·ω)`
/// (a junction through a flatten spreads each neuron over positions); A gains rows γ·α; the
/// normalisation after A (if any) gains channels that pass the new inputs through.
/// A FanOutAmplitude proposal (new units "unit", which the engine makes only where a normalisation follows
/// A): A gains rows α as given, the normalisation (if any) standardises them (weight 1, bias 0), W_B ← W_B − γδ;
/// the change is linear in γ, as NeuronProposal's contract says (the γ search relies on it: CandidateLoss.linearChange).
let apply (a: IGrowableLayer) (norm: IGrowingNorm option) (b: IGrowableLayer) (fanOutOf: Tensor -> Tensor)
          (proposal: NeuronProposal) (gamma: float) (statistics: JunctionStatistics) : IAppliedGrowth =
    if gamma <= 0.0 then AppliedGrowth.None
    else
        use _ = torch.no_grad ()
        let snapshotA, snapshotB = Seq.toArray a.Parameters, Seq.toArray b.Parameters
        let snapshotNorm = norm |> Option.map (fun n -> n, n.State)
        let mutable bReplaced = false
        let replaceB (values: Tensor[]) =
            let before = Seq.toArray b.Parameters
            b.Load values
            if bReplaced then before |> Array.iter (fun p -> p.Dispose ())
            bReplaced <- true
        // Unit new units (FanOutAmplitude): γ on B only, so the change is linear in γ.
        let unit = proposal.FanOutAmplitude
        match proposal.Delta with
        | null -> ()
        | delta -> replaceB (b.UpdateExisting (delta, (if unit then gamma else gamma * gamma)))
        if proposal.Count > 0 then
            use scaled = proposal.FanOut * gamma
            use fanOut = fanOutOf scaled
            replaceB (b.GrowInputs fanOut)
            use fanIn = if unit then proposal.FanIn.alias () else proposal.FanIn * gamma
            match norm with
            | Some n ->
                let mean, variance = newChannelMoments fanIn statistics
                use mean = mean
                use variance = variance
                n.Load (if unit then n.GrownStandardised (mean, variance) else n.Grown (mean, variance))
            | None -> ()
            a.Load (a.GrowOutputs fanIn)
        AppliedGrowth.Of
            [ if proposal.Count > 0 then
                  yield LayerParameters (a, snapshotA)
                  match snapshotNorm with Some (n, s) -> yield NormState (n, s) | None -> ()
              if bReplaced then yield LayerParameters (b, snapshotB) ]

/// What σ sees of a junction's A: its pre-activations (A's output, then A's normalisation in probe
/// mode), channels on dimension 1. The amplitude bound compares new and existing channels on it.
type IPreActivations =
    abstract PreActivations: aInput: Tensor -> Tensor

/// A junction between two layers of one block, with its rows and apply given as functions: the
/// dense chain, CNN stages and ResNet blocks are all this with different rows.
/// `perPositionRows` (default true): each statistics row's b̃ is what one entry of B's input is computed
/// from (dense, restricted conv), so σ(norm(αᵀb̃)) is that entry; false when B reads a pooling of A's
/// outputs (a global average pool head: b̃ is then a mean of patches).
type ChainJunction(name: string, a: IGrowableLayer, norm: IGrowingNorm option, b: IGrowableLayer, maxWidth: int,
                   parametersPerNeuron: unit -> int64, rowSize: unit -> int64,
                   rows: JunctionRecord -> Tensor -> int64 -> torch.Generator | null -> JunctionRows,
                   fanOutOf: Tensor -> Tensor, ?perPositionRows: bool) =
    /// The normalisation between A and σ, if any.
    member _.Norm = norm
    member _.PerPositionRows = defaultArg perPositionRows true
    interface IJunction with
        member _.Name = name
        member _.A = a
        member _.B = b
        member _.MaxWidth = maxWidth
        member _.ActivationSlopeAtZero = a.ActivationSlopeAtZero
        member _.ParametersPerNeuron = parametersPerNeuron ()
        member _.RowSize = rowSize ()
        member _.Rows(record, gradB, maxRows, generator) = rows record gradB maxRows generator
        member _.Apply(proposal, gamma, statistics) = apply a norm b fanOutOf proposal gamma statistics
    interface IPreActivations with
        member _.PreActivations aInput =
            let z = a.Forward aInput
            match norm with
            | Some n -> n.Forward (z, ForwardPass.Probe)
            | None -> z

/// The junction's normalisation between A and σ, when it is a chain junction with one (None: A's output is the
/// pre-activation).
let normalisationOf (junction: IJunction) =
    match junction with
    | :? ChainJunction as c -> c.Norm
    | _ -> None
