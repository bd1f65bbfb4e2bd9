/// New units that train like units that were there from the start (DESIGN §4.7, Growth:NewUnits =
/// "unit"), for a junction with a normalisation between A and σ (conv → BatchNorm → σ → B) (toUnit), and for a dense A
/// without one (atInitScale, below).
///
/// A strategy proposes (α_k, ω_k) for the linear theory: neuron k adds ω_k·σ′(0)·α_kᵀb̃ at amplitude γ
/// on both. Behind a BatchNorm that theory trains badly: a fan-in of norm γ·|α| ≪ the existing rows'
/// gets an effective learning rate ∝ 1/|w|² orders of magnitude above theirs (BatchNorm makes the
/// row's scale irrelevant to the function but not to its gradient), and a channel matched to pass γ·z
/// through (weight √Var(γz)) sits at a tiny scale with a tiny fan-out: both factors small, it barely
/// moves. Here instead:
///   α'_k = r·α_k/|α_k|            r: the median norm of A's existing rows (weights, bias excluded)
///   h_k  = σ((α'_kᵀb̃ − μ_k)/√(v_k + ε))   the new channel after BatchNorm at weight 1, bias 0 (μ_k, v_k:
///                                   the measured moments of α'_kᵀp over A's output positions)
///   ω    = (S_h⁺ T)ᵀ               least squares of the desired update on the actual features:
///     S_h = E[h hᵀ],  T = E[h v_projᵀ] = −E[h gᵀ] + E[h bᵀ]δᵀ (δ applied) or −E[h gᵀ] (not)
/// and γ scales the fan-out and δ only: W_B ← W_B − γδ, B's new columns γω. The change of the
/// network is linear in γ, so is the first-order decrease, exactly (h does not depend on γ):
///   decrease(γ) = γ·(Δ + Σ_k ω_kᵀ E[v h_k]),   v = −g.
/// The expectations come from the statistics' row sample (JunctionStatistics.RowSample), one row per
/// entry of B's input. Where B reads a global average pool of A the rows are samples and carry A's patches at
/// every position (JunctionRows.PositionPatches): h_k is then the mean over positions of the feature above.
/// A junction with neither (a flatten head) keeps the linear fan-out, rescaled to the unit feature:
/// ω'_k = ω_k·√Var(α_kᵀp), and the linear prediction γ(Δ + σ′(0)Σλ_k²), which the half-rectified ReLU
/// feature does not reach.
///
/// A dense A without a normalisation (an MLP's hidden layers, a CNN's dense layer) has the same trouble in
/// another form: a scaled new unit has fan-in γα and fan-out γω, and where the γ search stops at a small γ
/// both are small; under SGD each factor's gradient is proportional to the other, so the unit stays near 0.
/// In the default MLP run 45–59 of the 250 first-layer units ended with a pre-activation RMS under 0.5
/// (none in the same network trained from scratch). With Growth:DenseNewUnits = "init" the fan-in goes to the scale A's own
/// initialisation gives a new row, U(±1/√fan_in) for weights and bias: RMS over the statistics rows
///   √E[(aᵀb̃)²] = √(tr S2 / (3·fan_in))      (initRms)
/// the fan-out is divided by the same factor (the same linear function at first order), and γ goes on
/// the fan-out and δ only, as above. (At the existing units' median RMS instead, the features sat in
/// tanh's saturation and the default run ended at 84.0 %: docs/notebook/2026-12-07-mlp-new-units-at-init-scale.md.)
module TinyGrow.Core.NewUnits

open TorchSharp
open TinyGrow.Abstractions


/// Rows (samples) kept for a junction into a pooled head (see sampleRowsFor).
let pooledRows = 1024

/// Rows a junction's accumulator keeps for the refit and the cross-validation (JunctionStatistics.RowSample):
/// Growth:CrossValidationRows, drawn from every row of the batches; 0 (the default): at most 4,096 of the rows
/// the sums use. K×K and K×out least squares for K ≤ a few dozen neurons are well determined by a few thousand
/// rows, but the cross-validated gain of a narrow junction is not: with a few hundred rows its standard error was
/// 10–50× the true slope in a float64 probe, and clipped at 0 it over-predicted the held-out slope 5–20× (docs/notebook/2026-12-06-cross-validation-rows.md).
/// Only junctions that grow unit new units keep any: one row per entry of B's input, or, into a pooled head,
/// one per sample with its patches (pooledRows).
let sampleRowsFor (options: GrowthOptions) (junction: IJunction) =
    let perPosition = match junction with :? Junctions.ChainJunction as c -> c.PerPositionRows | _ -> false
    if options.NewUnits = "unit" && (Junctions.normalisationOf junction).IsSome then
        if perPosition then (if options.CrossValidationRows > 0 then options.CrossValidationRows else 4096)
        // One row per sample, each with A's patches at every position (a pooled head): 1,024 samples of the
        // Fashion-MNIST CNN's last conv (49 positions × 577) are 116 MB in float32. A flatten head's rows carry no
        // patches: they are kept too (a few MB) but toUnit does not use them.
        else pooledRows
    else 0

/// Whether `proposal` at `junction` is turned into unit new units: NewUnits = "unit" and a normalisation after A,
/// or DenseNewUnits = "init" and a dense A without one; neurons proposed, and no fixed amplitude of the strategy's
/// own (GradMax).
let applies (options: GrowthOptions) (junction: IJunction) (proposal: NeuronProposal) =
    proposal.Count > 0 && not proposal.Amplitude.HasValue
    && (match Junctions.normalisationOf junction with
        | Some _ -> options.NewUnits = "unit"
        | None -> options.DenseNewUnits = "init" && junction.A.Kind = "dense")

/// The RMS over the statistics rows of a dense A's pre-activation for a row drawn like its initialisation
/// (weights and bias i.i.d. U(±1/√fan_in), variance 1/(3·fan_in) each): √(tr S2 / (3·fan_in)), fan_in = D2
/// less the bias entry.
let initRms (junction: IJunction) (statistics: JunctionStatistics) =
    let d2 = statistics.S2.shape[0]
    let fanIn = max 1L (if junction.A.HasBias then d2 - 1L else d2)
    sqrt ((use t = statistics.S2.trace () in t.ToDouble ()) / (3.0 * float fanIn))

/// RMS over the statistics rows of each K×D2 fan-in's pre-activation αᵀb̃: √(α S2 αᵀ), float64.
let fanInRms (statistics: JunctionStatistics) (fanIn: torch.Tensor) =
    use f = fanIn.to_type torch.ScalarType.Float64
    use fs = f.mm statistics.S2
    use sq = (fs * f).sum 1L
    sq.clamp_min(0.0.ToScalar ()).sqrt ()

/// Median L2 norm of A's existing rows (its first parameter, out × …), bias excluded; 1 when A has
/// no nonzero row.
let existingRowNorm (a: IGrowableLayer) =
    use _ = torch.no_grad ()
    let w = a.Parameters[0] :> torch.Tensor
    if w.shape[0] = 0L then 1.0
    else
        use rows = w.reshape (w.shape[0], -1L)
        use norms = rows.to_type(torch.float64).norm (1)
        let median = (use m = norms.median () in m.ToDouble ())
        if median > 0.0 && System.Double.IsFinite median then median else 1.0

/// K×D2 fan-in rows rescaled so that their weights (bias entry excluded) have norm `target`.
let rescaledFanIn (fanIn: torch.Tensor) (hasBias: bool) (target: float) =
    let d2 = fanIn.shape[1]
    use weights = if hasBias then fanIn.narrow (1L, 0L, d2 - 1L) else fanIn.alias ()
    use norms = weights.norm (1, true)
    use safe = norms.clamp_min (1e-300)
    fanIn * (target / safe)

/// ε of the normalisation (BatchNorm's 1e-5 unless it says otherwise).
let private epsOf (junction: IJunction) =
    match Junctions.normalisationOf junction with
    | Some (:? GrowableBatchNorm as bn) -> bn.Eps
    | _ -> 1e-5

/// The new channels' features h = σ((b̃α'ᵀ − μ)/√(v + ε)) on rows b̃ (r×D2, float64), K×D2 fan-in; on rows of
/// patches at every position (r×P×D2, a pooled head) the mean over positions of that, as the network computes it
/// (float64 result; the patches may be float32).
let features (junction: IJunction) (statistics: JunctionStatistics) (fanIn: torch.Tensor) (bt: torch.Tensor) =
    use scope = torch.NewDisposeScope ()
    let mean, variance = Junctions.newChannelMoments fanIn statistics
    let normalised (z: torch.Tensor) = Activations.apply junction.A.Activation ((z - mean) / (variance + epsOf junction).sqrt ())
    let h =
        if bt.dim () = 3L then
            let z = (bt.matmul (fanIn.t().to_type bt.dtype)).to_type torch.ScalarType.Float64 // r×P×K
            (normalised z).mean ([| 1L |])
        else normalised (bt.mm (fanIn.t ()))
    h.MoveToOuterDisposeScope ()

/// Least squares X⁺Y through XᵀX (k×k or D×D) at the relative cutoff: (XᵀX)⁺XᵀY.
let private leastSquares (x: torch.Tensor) (y: torch.Tensor) (cutoff: float) =
    use scope = torch.NewDisposeScope ()
    use f = LinearAlgebra.psdFactor (x.t().mm x) cutoff
    (LinearAlgebra.solvePsd f (x.t().mm y)).MoveToOuterDisposeScope ()

/// The row sample in float64: b, b̃, g, A's patches at every position for a pooled head (in the rows' own dtype;
/// null: the rows are per position), and the per-sample scale of a sum over all of its rows.
type Sample =
    { B: torch.Tensor; BT: torch.Tensor; G: torch.Tensor; Positions: torch.Tensor | null; Scale: float }
    /// The rows new units' features are computed on: the position patches if any, else b̃.
    member s.FeatureRows = match s.Positions with null -> s.BT | p -> p

/// A row sample in float64, with its per-sample scale.
let sampleOf (rows: JunctionRows) : Sample =
    let f64 (t: torch.Tensor) = t.to_type torch.ScalarType.Float64
    { B = f64 rows.B; BT = f64 rows.ATilde; G = f64 rows.G; Scale = rows.RowWeight / float rows.Samples
      Positions = (match rows.PositionPatches with null -> null | p -> p.alias ()) }

/// δ (out×D1) fitted on the rows: the least-squares change of B's existing weights.
let private deltaOn (s: Sample) (cutoff: float) = (leastSquares s.B s.G cutoff).t ()

/// v_proj = −g + bδᵀ (rows × out): the desired update after δ (v = −g without δ).
let private desiredAfter (s: Sample) (delta: torch.Tensor | null) =
    match delta with
    | null -> s.G.neg ()
    | d -> s.B.mm (d.t ()) - s.G

/// The least-squares fan-out (out×K) of features h for the desired update y (rows × out).
let private fanOutFor (h: torch.Tensor) (y: torch.Tensor) (cutoff: float) = (leastSquares h y cutoff).t ()

/// First-order decrease per unit γ of a change on rows `s`: −γδ on B's existing weights (if any) and
/// γω on features h: Σ_rows ⟨g, bδᵀ⟩ + ⟨−g, hωᵀ⟩, per sample.
let private slopeOn (s: Sample) (delta: torch.Tensor | null) (h: torch.Tensor) (omega: torch.Tensor) =
    use scope = torch.NewDisposeScope ()
    let fromDelta = match delta with null -> 0.0 | d -> (s.G * s.B.mm (d.t ())).sum().ToDouble ()
    let fromNew = if omega.shape[1] = 0L then 0.0 else -(s.G * h.mm (omega.t ())).sum().ToDouble ()
    s.Scale * (fromDelta + fromNew)

/// Folds of whole batches (at most `folds`) of the row sample: fold of a row = its batch × F / batches.
let private foldsOf (batches: torch.Tensor) (folds: int) =
    use cpu = batches.cpu ()
    let ids = cpu.data<int64>().ToArray ()
    let count = if ids.Length = 0 then 0L else Array.max ids + 1L
    let f = int (min (int64 folds) count)
    f, ids |> Array.map (fun b -> int (b * int64 f / count))

/// Folds the cross-validation uses (at most; fewer when the sample holds fewer batches).
let crossValidationFolds = 8

/// z of the one-sided test the cross-validated gain of the new neurons must pass (mean over folds
/// above z standard errors): about a 2.5 % chance of growing on noise alone.
let significanceZ = 2.0

/// What the cross-validation found: per fold f and per number of neurons k = 0..K, the first-order
/// decrease per unit γ on fold f of the proposal (δ and the top k directions) fitted on the other folds
/// (only k = 0 and K, the others NaN, unless every count is asked for: the prediction needs only those).
type CrossValidation =
    { Slopes: float[][]
      /// The number of neurons chosen: the k of the largest mean slope, 0 unless its gain over k = 0
      /// exceeds significanceZ standard errors across folds.
      Chosen: int
      /// Mean slope of k = 0 (δ alone).
      DeltaSlope: float }
    /// Mean slope over the folds of the proposal with k neurons.
    member c.MeanSlope (k: int) = c.Slopes |> Array.averageBy (fun s -> s[min k (s.Length - 1)])
    /// Standard error of MeanSlope k over the folds (NaN with one fold).
    member c.SlopeError (k: int) = Statistics.meanStandardError (c.Slopes |> Array.map (fun s -> s[min k (s.Length - 1)]))

/// The proposal procedure on rows `fit`, as tiny and toUnit make it: δ (the least-squares change of B's existing
/// weights) fitted on the rows, the first `maxNeurons` directions of the SVD of W·N with N = Σ b̃ (bδᵀ − g)ᵀ, the
/// desired update projected off what B's existing weights can express (tiny projects whether or not δ is applied:
/// Bottleneck.projectedN), their fan-ins rescaled to `rowNorm`. Returns (δ when applied, else null; K×D2 fan-ins).
/// Fitting the directions to the unprojected −g instead (as before 2026-12-06, with δ not applied) cross-validated
/// another procedure: on the Fashion-MNIST CNN's conv → conv junctions its proposals gained 2–6× what tiny's gain
/// on held-out samples (docs/notebook/2026-12-06-conv-prediction-noise.md).
let fitOn (fit: Sample) (whitening: LinearAlgebra.PsdFactor) (applyDelta: bool) (maxNeurons: int) (hasBias: bool) (rowNorm: float) (cutoff: float) =
    use scope = torch.NewDisposeScope ()
    let projection = deltaOn fit cutoff
    let n = fit.BT.t().mm (desiredAfter fit projection)
    let directions = Bottleneck.take maxNeurons (Bottleneck.neuronDirectionsWith whitening n)
    let fanIn = rescaledFanIn directions.FanIn hasBias rowNorm
    let delta : torch.Tensor | null = if applyDelta then projection.MoveToOuterDisposeScope () else null
    delta, fanIn.MoveToOuterDisposeScope ()

/// Cross-validated first-order decrease of the proposal procedure (fitOn: δ, then up to `maxNeurons` TINY
/// directions from the SVD of S2^{-1/2}N, unit features, least-squares fan-out), over folds of whole
/// batches: what the proposal will do on samples it was not fitted on. In-sample, a fitted proposal
/// also explains the sampling noise of N (which grows like D2·out/samples): measured on the
/// Fashion-MNIST CNN's conv junctions, the in-sample prediction was 50–500 times the held-out decrease.
let crossValidate (junction: IJunction) (statistics: JunctionStatistics) (sample: Sample) (fold: int[]) (folds: int)
                  (withDelta: bool) (maxNeurons: int) (everyCount: bool) (rowNorm: float) (cutoff: float) : CrossValidation =
    use scope = torch.NewDisposeScope ()
    use whitening = LinearAlgebra.psdFactor statistics.S2 (Bottleneck.effectiveCutoff cutoff statistics statistics.S2.shape[0])
    let device = sample.B.device
    let rows = int64 fold.Length
    let slopes =
        [| for f in 0 .. folds - 1 do
             use foldScope = torch.NewDisposeScope ()
             use isOut = torch.tensor (fold |> Array.map (fun x -> x = f), device = device)
             use outIdx = isOut.nonzero().flatten ()
             use inIdx = (isOut.logical_not ()).nonzero().flatten ()
             let part (idx: torch.Tensor) =
                 // Position patches are not copied per fold: their features are computed on all rows below.
                 { B = sample.B.index_select (0L, idx); BT = sample.BT.index_select (0L, idx); G = sample.G.index_select (0L, idx)
                   Positions = null; Scale = sample.Scale * float rows / float idx.shape[0] }
             let fit, held = part inIdx, part outIdx
             let delta, fanIn = fitOn fit whitening withDelta maxNeurons junction.A.HasBias rowNorm cutoff
             // The fan-out fits what the new units must do: the desired update after δ when δ is applied, −g when not.
             let y = desiredAfter fit delta
             let k = int fanIn.shape[0]
             let hFit, hHeld =
                 match sample.Positions with
                 | null -> features junction statistics fanIn fit.BT, features junction statistics fanIn held.BT
                 | positions ->
                     use all = features junction statistics fanIn positions
                     all.index_select (0L, inIdx), all.index_select (0L, outIdx)
             yield
                 Array.init (maxNeurons + 1) (fun kk ->
                   if not everyCount && kk > 0 && kk < maxNeurons then nan
                   else
                     let kk = min kk k
                     use _ = torch.NewDisposeScope ()
                     let hf, hh = hFit.narrow (1L, 0L, int64 kk), hHeld.narrow (1L, 0L, int64 kk)
                     let omega = if kk = 0 then torch.zeros ([| y.shape[1]; 0L |], dtype = y.dtype, device = device) else fanOutFor hf y cutoff
                     slopeOn held delta hh omega) |]
    let mean (k: int) = slopes |> Array.averageBy (fun s -> s[k])
    let best = if everyCount then [| 0 .. maxNeurons |] |> Array.maxBy mean else maxNeurons
    let gains = slopes |> Array.map (fun s -> s[best] - s[0])
    let gain = Array.average gains
    let error = if gains.Length < 2 then infinity else Statistics.meanStandardError gains
    let chosen = if best > 0 && gain > significanceZ * error then best else 0
    { Slopes = slopes; Chosen = chosen; DeltaSlope = mean 0 }

/// The least-squares fan-out on the actual features of the whole row sample and each neuron's
/// in-sample first-order share. Returns (ω out×K, shares K).
let refitFanOut (junction: IJunction) (statistics: JunctionStatistics) (s: Sample) (fanIn: torch.Tensor) (delta: torch.Tensor | null) (cutoff: float) =
    use _ = torch.no_grad ()
    use scope = torch.NewDisposeScope ()
    let h = features junction statistics fanIn s.FeatureRows
    let omega =                                                                // out×K
        if fanIn.shape[0] = 0L then torch.zeros ([| s.G.shape[1]; 0L |], dtype = s.G.dtype, device = s.G.device)
        else fanOutFor h (desiredAfter s delta) cutoff
    let perNeuron = Array.init (int omega.shape[1]) (fun k -> slopeOn s null (h.narrow (1L, int64 k, 1L)) (omega.narrow (1L, int64 k, 1L)))
    omega.MoveToOuterDisposeScope (), perNeuron

/// `proposal` as unit new units at `junction` (see the module's comment). The caller keeps ownership
/// of `proposal`; the result is a new proposal. With per-position rows the prediction is cross-validated
/// (crossValidate: the held-out folds' mean), and with NewUnitsCount = "crossvalidated" so is the number
/// of neurons (the first K the strategy proposed, K chosen on the held-out folds, possibly 0).
let toUnit (options: GrowthOptions) (junction: IJunction) (statistics: JunctionStatistics) (proposal: NeuronProposal) : NeuronProposal =
    use _ = torch.no_grad ()
    let rowNorm = existingRowNorm junction.A
    let delta : torch.Tensor | null = match proposal.Delta with null -> null | d -> d.clone ()
    let perPosition = match junction with :? Junctions.ChainJunction as c -> c.PerPositionRows | _ -> false
    match statistics.RowSample, statistics.RowSampleBatches with
    | NonNull rows, NonNull batches when (perPosition || not (isNull rows.PositionPatches)) && rows.ATilde.dim () = 2L ->
        use scope = torch.NewDisposeScope ()
        // Converted once: the cross-validation and the refit read the same float64 rows.
        let s = sampleOf rows
        let folds, fold = foldsOf batches crossValidationFolds
        let cv =
            if folds < 2 then None
            else
                Some (crossValidate junction statistics s fold folds (not (isNull delta)) proposal.Count (options.NewUnitsCount = "crossvalidated") rowNorm options.EigenCutoff)
        // The strategy's count by default: chosen by held-out first-order gain (NewUnitsCount =
        // "crossvalidated"), conv junctions at these sample sizes almost never pass, and a network that
        // stays at its first widths trains to far less (docs/results.md#claim-cnn).
        let k = match cv with Some c when options.NewUnitsCount = "crossvalidated" -> c.Chosen | _ -> proposal.Count
        use kept = proposal.FanIn.narrow (0L, 0L, int64 k)
        let fanIn = rescaledFanIn kept junction.A.HasBias rowNorm
        let omega, shares = refitFanOut junction statistics s fanIn delta options.EigenCutoff
        let deltaDecrease, scores =
            match cv with
            | Some c ->
                // The held-out gain of the k neurons, spread over them as their in-sample shares.
                let gain = max 0.0 (c.MeanSlope k - c.DeltaSlope)
                let total = shares |> Array.sumBy (max 0.0)
                c.DeltaSlope, (if total > 0.0 then shares |> Array.map (fun sh -> gain * max 0.0 sh / total) else Array.create k (gain / float (max 1 k)))
            | None -> (if isNull delta then 0.0 else proposal.DeltaDecrease), shares
        // The proposal's tensors outlive the scope of the float64 rows.
        new NeuronProposal (fanIn.DetachFromDisposeScope (), omega.DetachFromDisposeScope (), delta, deltaDecrease, scores, 1.0, proposal.Bottleneck,
                            NoiseFloor = proposal.NoiseFloor, FanOutAmplitude = true,
                            DecreaseStandardError = (match cv with Some c -> c.SlopeError k | None -> nan))
    | _ ->
        // No per-position rows: the linear fan-out for a unit-scale feature z_k/√Var z_k.
        let fanIn = rescaledFanIn proposal.FanIn junction.A.HasBias rowNorm
        let _, variance = Junctions.newChannelMoments proposal.FanIn statistics
        use variance = variance
        use std = (variance + epsOf junction).sqrt ()
        new NeuronProposal (fanIn, proposal.FanOut * std.unsqueeze 0L, delta, (if isNull delta then 0.0 else proposal.DeltaDecrease),
                            Array.copy proposal.NeuronScores, proposal.ActivationSlope, proposal.Bottleneck,
                            NoiseFloor = proposal.NoiseFloor, FanOutAmplitude = true)

/// The float64 norm of each input column of a weight (dimension 1: the weights that read one input, out × taps).
let private columnNorms (w: torch.Tensor) =
    use columns = w.transpose(0L, 1L).reshape (w.shape[1], -1L)
    columns.to_type(torch.float64).norm (1)

/// Median norm of B's existing input columns (the weights that read one input: out × taps).
let existingColumnNorm (b: IGrowableLayer) =
    use _ = torch.no_grad ()
    let w = b.Parameters[0] :> torch.Tensor
    if w.dim () < 2L || w.shape[1] = 0L then nan
    else
        use norms = columnNorms w
        (use m = norms.median () in m.ToDouble ())

/// The largest γ at which every new fan-out column γ·ω_k has at most `ratio` times the median norm of B's
/// existing columns (DESIGN §4.6 for unit new units: the features are at scale, so what could make a new
/// unit dominate B's input, and its fan-in's gradient, is its fan-out). +∞ when nothing can be measured.
let fanOutBound (ratio: float) (junction: IJunction) (proposal: NeuronProposal) =
    let existing = existingColumnNorm junction.B
    use norms = proposal.FanOut.norm (0)
    let largest = if norms.numel () = 0L then 0.0 else (use m = norms.max () in m.ToDouble ())
    if largest > 0.0 && existing > 0.0 && System.Double.IsFinite existing then ratio * existing / largest else infinity

/// `proposal` at a dense A without a normalisation (DenseNewUnits = "init", see the module's comment): each fan-in at
/// initRms, its fan-out divided by the same factor, γ on the fan-out and δ only; the strategy's linear prediction. A
/// fan-in silent on the rows keeps its scale (nothing to measure it by), as do all when the rows are, tr S2 = 0. The
/// caller keeps ownership of `proposal`; the result is a new proposal.
let atInitScale (junction: IJunction) (statistics: JunctionStatistics) (proposal: NeuronProposal) : NeuronProposal =
    use _ = torch.no_grad ()
    use scope = torch.NewDisposeScope ()
    let rms = fanInRms statistics proposal.FanIn
    let target = initRms junction statistics
    let factor =
        if target > 0.0 && System.Double.IsFinite target then
            torch.where (rms.gt (1e-300.ToScalar ()), target.ToScalar () / rms.clamp_min (1e-300.ToScalar ()), torch.ones_like rms)
        else torch.ones_like rms
    let fanIn = (proposal.FanIn * factor.unsqueeze 1L).DetachFromDisposeScope ()
    let fanOut = (proposal.FanOut / factor.unsqueeze 0L).DetachFromDisposeScope ()
    let delta : torch.Tensor | null = match proposal.Delta with null -> null | d -> d.clone().DetachFromDisposeScope ()
    new NeuronProposal (fanIn, fanOut, delta, (if isNull delta then 0.0 else proposal.DeltaDecrease),
                        Array.copy proposal.NeuronScores, proposal.ActivationSlope, proposal.Bottleneck,
                        NoiseFloor = proposal.NoiseFloor, FanOutAmplitude = true)

/// `proposal` adapted to the configured new units: a new proposal when `applies`, else None.
let adapt (options: GrowthOptions) (junction: IJunction) (statistics: JunctionStatistics) (proposal: NeuronProposal) : NeuronProposal option =
    if not (applies options junction proposal) then None
    elif (Junctions.normalisationOf junction).IsSome then Some (toUnit options junction statistics proposal)
    else Some (atInitScale junction statistics proposal)
