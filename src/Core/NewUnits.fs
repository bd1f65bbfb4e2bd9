/// New units that train like units that were there from the start (DESIGN §4.7, Growth:NewUnits =
/// "unit"), for a junction with a normalisation between A and σ (conv → BatchNorm → σ → B).
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
/// entry of B's input. A junction whose rows are not (B reads a global average pool of A) keeps the
/// linear fan-out, rescaled to the unit feature: ω'_k = ω_k·√Var(α_kᵀp), and the linear prediction
/// γ(Δ + σ′(0)Σλ_k²), which the half-rectified ReLU feature does not reach.
module TinyGrow.Core.NewUnits

open TorchSharp
open TinyGrow.Abstractions

/// Rows a junction's accumulator keeps for the refit (JunctionStatistics.RowSample): K×K and K×out
/// least squares for K ≤ a few dozen neurons are well determined by a few thousand rows.
let sampleRowsFor (options: GrowthOptions) = if options.NewUnits = "unit" then 4096 else 0

/// The junction's normalisation between A and σ, when the junction exposes one.
let private normOf (junction: IJunction) =
    match junction with
    | :? Junctions.ChainJunction as c -> c.Norm
    | _ -> None

/// Whether `proposal` at `junction` is turned into unit new units: NewUnits = "unit", a
/// normalisation after A, neurons proposed, and no fixed amplitude of the strategy's own (GradMax).
let applies (options: GrowthOptions) (junction: IJunction) (proposal: NeuronProposal) =
    options.NewUnits = "unit" && proposal.Count > 0 && not proposal.Amplitude.HasValue && (normOf junction).IsSome

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
    match normOf junction with
    | Some (:? GrowableBatchNorm as bn) -> bn.Eps
    | _ -> 1e-5

/// The least-squares fan-out on the actual features and each neuron's first-order share, from the
/// row sample. Returns (ω out×K, shares K).
let refitFanOut (junction: IJunction) (statistics: JunctionStatistics) (sample: JunctionRows) (fanIn: torch.Tensor) (delta: torch.Tensor | null) (cutoff: float) =
    use _ = torch.no_grad ()
    use scope = torch.NewDisposeScope ()
    let f64 (t: torch.Tensor) = t.to_type torch.ScalarType.Float64
    let bt, b, g = f64 sample.ATilde, f64 sample.B, f64 sample.G
    let mean, variance = Junctions.newChannelMoments fanIn statistics
    let z = bt.mm (fanIn.t ())                                               // r×K
    let h = Activations.apply junction.A.Activation ((z - mean) / (variance + epsOf junction).sqrt ())
    let c = sample.RowWeight / float sample.Samples                          // per-sample scale
    let shh = h.t().mm h * c                                                 // E[h hᵀ], K×K
    let chv = h.t().mm g * (-c)                                              // E[h vᵀ], K×out
    let target =
        match delta with
        | null -> chv
        | d -> chv + (h.t().mm b * c).mm (d.t ())                            // E[h v_projᵀ]
    use f = LinearAlgebra.psdFactor shh cutoff
    let omega = (LinearAlgebra.solvePsd f target).t().contiguous ()         // out×K
    let shares = (omega.t () * chv).sum (1L)
    let sharesArray = (use cpu = shares.cpu () in cpu.data<float>().ToArray ())
    omega.MoveToOuterDisposeScope (), sharesArray

/// `proposal` as unit new units at `junction` (see the module's comment). The caller keeps ownership
/// of `proposal`; the result is a new proposal.
let toUnit (options: GrowthOptions) (junction: IJunction) (statistics: JunctionStatistics) (proposal: NeuronProposal) : NeuronProposal =
    use _ = torch.no_grad ()
    let fanIn = rescaledFanIn proposal.FanIn junction.A.HasBias (existingRowNorm junction.A)
    let delta : torch.Tensor | null = match proposal.Delta with null -> null | d -> d.clone ()
    let perPosition = match junction with :? Junctions.ChainJunction as c -> c.PerPositionRows | _ -> false
    let fanOut, scores, slope =
        match statistics.RowSample with
        | NonNull sample when perPosition && sample.ATilde.dim () = 2L ->
            let omega, shares = refitFanOut junction statistics sample fanIn delta options.EigenCutoff
            omega, shares, 1.0
        | _ ->
            // No per-position rows: the linear fan-out for a unit-scale feature z_k/√Var z_k.
            let _, variance = Junctions.newChannelMoments proposal.FanIn statistics
            use variance = variance
            use std = (variance + epsOf junction).sqrt ()
            proposal.FanOut * std.unsqueeze 0L, Array.copy proposal.NeuronScores, proposal.ActivationSlope
    new NeuronProposal (fanIn, fanOut, delta, (if isNull delta then 0.0 else proposal.DeltaDecrease), scores, slope, proposal.Bottleneck,
                        NoiseFloor = proposal.NoiseFloor, FanOutAmplitude = true)

/// `proposal` adapted to the configured new units: a new proposal when `applies`, else None.
let adapt (options: GrowthOptions) (junction: IJunction) (statistics: JunctionStatistics) (proposal: NeuronProposal) : NeuronProposal option =
    if applies options junction proposal then Some (toUnit options junction statistics proposal) else None
