/// One proposal function; TINY, GradMax and random growth are settings of it (STYLE: one mechanism,
/// many settings). From a junction's statistics (DESIGN §4), with v = −g the desired update:
///   N = −(M2 − Pδᵀ) (Project) or −M2           what new neurons should express, seen from A's inputs
///   W·N = U diag(λ) Vᵀ, W = S2^{-1/2} (Whiten) or I   directions, sorted; `select` keeps K of them
/// and the fan-in rule, simplest last:
///   Optimal (TINY):  α_k = √λ_k Wᵀu_k, ω_k = √λ_k v_k; neuron k lowers the loss by σ′(0)λ_k² (first order).
///   Zero (GradMax, Evci et al. 2022): α_k = 0, ω_k = c·v_k/|v_k| with c the mean norm of B's existing
///     fan-outs (GradMax's "mean_norm" rule: the norm, over B's outputs and taps, of the weights reading
///     one existing input of B, averaged over those inputs). The function is unchanged at every γ, so
///     the proposal carries Amplitude = 1 (no γ search). What it maximises is the gradient of the new
///     fan-ins, ∂L/∂α_k = σ′(0)·M2·ω_k: its score is ‖∂L/∂α_k‖²/σ′(0), so that PredictedDecrease(1) is
///     Σ_k‖∂L/∂α_k‖², the rate at which gradient flow on the new fan-ins starts to lower the loss.
///     (With a normalisation between A and σ the batch mean of that gradient is removed.)
///   Drawn (random): α_k drawn like A's initialisation, uniform ±1/√fan_in (bias included, as A's
///     layer kinds draw it), from the request's generator; ω_k the least-squares fan-out for that α_k
///     alone: the new neuron adds z_k = α_kᵀb̃ (times σ′(0), to first order) to B's pre-activation, and
///     min_ω E‖v_proj − ω z_k‖² gives ω_k = Nᵀα_k / (α_kᵀ S2 α_k). Its first-order decrease is
///     σ′(0)·α_kᵀNω_k = σ′(0)·‖Nᵀα_k‖² / (α_kᵀS2α_k) ≥ 0: a random proposal never predicts an
///     increase, neuron by neuron. The K neurons are fitted each alone: correlated ones overshoot
///     together, and the γ search scales them down. K is what `select` keeps of the λ_k above.
/// δ (the best update of B's existing weights, and its decrease Δ) is applied only with ApplyDelta.
module TinyGrow.Growth.Strategies.Proposal

open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core

/// How new neurons' fan-ins are chosen.
type FanInRule =
    /// α_k from the SVD (TINY): the best fan-in for the fan-out.
    | Optimal
    /// α_k = 0 (GradMax): the fan-out maximises the fan-ins' gradient; applied at γ = 1, no search.
    | Zero
    /// α_k drawn like A's initialisation (random); ω_k the least-squares fan-out for it.
    | Drawn

/// The settings that tell TINY, GradMax and random growth apart.
type Settings =
    { /// N = −(M2 − Pδᵀ), the desired update minus what δ expresses (else −M2, the raw gradient).
      Project: bool
      /// Directions from S2^{-1/2}N (A's input covariance whitened) rather than from N.
      Whiten: bool
      FanIn: FanInRule
      /// Also apply δ, W_B ← W_B − γ²δ.
      ApplyDelta: bool }

/// Mean over B's existing inputs of the norm of the weights that read them (dims other than 1 of
/// B's first parameter, its weight: out×in for dense layers, out×in×kh×kw for convolutions).
/// 1 when B has no nonzero weight to measure.
let meanFanOutNorm (b: IGrowableLayer) =
    use _ = torch.no_grad ()
    let w = b.Parameters[0] :> torch.Tensor
    if w.dim () < 2L || w.shape[1] = 0L then 1.0
    else
        use perInput = (w.transpose(0L, 1L).reshape (w.shape[1], -1L)).to_type(torch.float64).norm (1)
        let c = (use m = perInput.mean () in m.ToDouble ())
        if c > 0.0 && System.Double.IsFinite c then c else 1.0

/// K×D2 fan-ins drawn uniform ±1/√fan_in (fan_in = D2 without A's bias entry), float64.
let drawnFanIn (k: int) (d2: int64) (aHasBias: bool) (generator: torch.Generator | null) (device: torch.Device) =
    let fanIn = max 1L (if aHasBias then d2 - 1L else d2)
    let bound = 1.0 / sqrt (float fanIn)
    use u = torch.rand ([| int64 k; d2 |], dtype = torch.float64, generator = generator)
    use centred = u * 2.0 - 1.0
    (centred * bound).``to`` device

/// The proposal for `request` under `settings`; `select` maps the λ_k (descending) to the number K kept
/// (it applies MaxNeurons).
let propose (settings: Settings) (select: float[] -> int) (request: GrowthRequest) : NeuronProposal =
    let stats, options = request.Statistics, request.Options
    let slope = request.Junction.ActivationSlopeAtZero // the σ between A and B
    let update = Bottleneck.existingWeightsUpdate stats options.EigenCutoff
    use n = if settings.Project then Bottleneck.projectedN stats update.Delta else stats.M2.neg ()
    let cutoff = Bottleneck.effectiveCutoff options.EigenCutoff stats stats.S2.shape[0]
    // A junction reading the network's input comes with its whitening computed once per run.
    let factor =
        if not settings.Whiten then None
        else
            match request.Whitening with
            | null -> Some (LinearAlgebra.psdFactor stats.S2 cutoff)
            | w -> Some (LinearAlgebra.Eigen (w.alias ()))
    use _ = { new System.IDisposable with member _.Dispose () = factor |> Option.iter (fun f -> (f :> System.IDisposable).Dispose ()) }
    let all =
        match factor with
        | Some w -> Bottleneck.neuronDirectionsWith w n
        | None -> Bottleneck.neuronDirections stats.S2 n cutoff false
    // Growth that stops by itself (DESIGN §4.1): only the λ_k above SignificanceFactor × the noise
    // floor of N (same space: projected or not, whitened or not) count; with no groups to estimate
    // the noise from, no direction is shown significant.
    let noiseFloor =
        if options.SignificanceTest = "none" then None
        else
            let delta = if settings.Project then Some update.Delta else None
            Bottleneck.noiseFloor stats delta factor cutoff options.SignificanceDraws options.SignificanceConfidence request.Generator
            |> Option.defaultValue infinity |> Some
    let significant =
        match noiseFloor with
        | Some floor -> all.Lambdas |> Array.takeWhile (fun l -> l > options.SignificanceFactor * floor)
        | None -> all.Lambdas
    let chosen = Bottleneck.take (select significant) all
    all.FanIn.Dispose ()
    all.FanOut.Dispose ()
    let k = chosen.Lambdas.Length
    let d2 = stats.S2.shape[0]
    let fanIn, fanOut, scores, amplitude =
        match settings.FanIn with
        | Optimal -> chosen.FanIn, chosen.FanOut, chosen.Lambdas |> Array.map (fun l -> l * l), None
        | Zero ->
            chosen.FanIn.Dispose ()
            use norms = chosen.FanOut.norm (0, true)
            use unit = chosen.FanOut / norms.clamp_min (1e-300)
            chosen.FanOut.Dispose ()
            let fanOut = unit * meanFanOutNorm request.Junction.B
            // ∂L/∂α_k = σ′(0)·M2·ω_k (mean loss); score ‖∂L/∂α_k‖²/σ′(0).
            use gradient = stats.M2.mm fanOut
            use squared = (gradient * gradient).sum (0L)
            let scores = (use c = squared.cpu () in c.data<float>().ToArray ()) |> Array.map (fun s -> slope * s)
            torch.zeros ([| int64 k; d2 |], dtype = torch.float64, device = n.device), fanOut, scores, Some 1.0
        | Drawn ->
            chosen.FanIn.Dispose ()
            chosen.FanOut.Dispose ()
            let alpha = drawnFanIn k d2 request.Junction.A.HasBias request.Generator n.device
            use alphaN = alpha.mm n                                   // K×out: row k is (Nᵀα_k)ᵀ
            use s2Alpha = alpha.mm stats.S2                          // K×D2
            use variance = (s2Alpha * alpha).sum (1L, true)          // α_kᵀ S2 α_k, K×1
            use positive = variance.gt (torch.tensor (0.0, dtype = torch.float64, device = n.device))
            use safe = torch.where (positive, variance, torch.ones_like variance)
            use fit = torch.where (positive, alphaN / safe, torch.zeros_like alphaN)
            let fanOut = fit.t().contiguous ()                        // out×K
            use share = (alphaN * fit).sum (1L)                       // α_kᵀNω_k ≥ 0
            alpha, fanOut, (use c = share.cpu () in c.data<float>().ToArray ()), None
    let delta, deltaDecrease =
        if settings.ApplyDelta then update.Delta |> LinearAlgebra.Null.from, update.Decrease
        else
            update.Delta.Dispose ()
            LinearAlgebra.Null.none, 0.0
    new NeuronProposal (fanIn, fanOut, delta, deltaDecrease, scores, slope, update.Bottleneck,
                        Amplitude = (match amplitude with Some a -> System.Nullable a | None -> System.Nullable ()),
                        NoiseFloor = (match noiseFloor with Some f -> System.Nullable (options.SignificanceFactor * f) | None -> System.Nullable ()))
