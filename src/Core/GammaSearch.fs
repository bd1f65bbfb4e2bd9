/// Stage 3 of a growth step (DESIGN §4.1, §4.6): the amplitude γ, by line search (LineSearch) on held-out training
/// samples. γ = 0 (add nothing now) is always a choice; the search walks the grid 2^(k/2) up while the
/// loss keeps falling (never capped at 1; jumping ahead to a loss model's minimum, lineSearchModel) and down
/// when γ₁ is no better. A candidate is accepted when its
/// held-out loss is below L(0) by more than the float32 rounding of the loss. Predicted decrease at γ:
/// γ^p(Δ + σ′(0)Σ scores), p = 2 (scaled) or 1 (unit new units); measured_over_predicted compares.
module TinyGrow.Core.GammaSearch

open System
open TorchSharp
open TorchSharp.Modules
open TinyGrow.Abstractions
open TinyGrow.Core.CandidateLoss
open TinyGrow.Core.LineSearch

/// What one junction's growth did (a `growth` line of metrics.jsonl). Spreads are root mean
/// squares of pre-activations on held-out samples (Amplitude); NaN when not measured (no neuron
/// proposed). Seconds: the statistics pass that served this junction (0 when an earlier junction's
/// pass did), the strategy's solve (whitening, SVD), the γ search (spreads + loss evaluations), the
/// final apply.
type GrowthEvent =
    { Junction: int
      Added: int
      /// Neurons the (adapted) proposal held: Added when accepted, what was refused otherwise.
      Proposed: int
      Gamma: float
      PredictedDecrease: float
      /// The standard error of PredictedDecrease (NeuronProposal.PredictedDecreaseError at the chosen γ); NaN when
      /// nothing was added or the proposal has no estimate of it.
      PredictedDecreaseError: float
      MeasuredDecrease: float
      Bottleneck: float
      Width: int
      /// Held-out loss before the step and with the committed candidate (what the search measured at γ).
      LossBefore: float
      LossAfter: float
      /// The amplitude bound on γ (+∞: none).
      GammaBound: float
      /// Median spread of A's existing neurons; largest and median spread of the new ones at γ.
      ExistingSpread: float
      NewSpread: float
      NewSpreadMedian: float
      LossEvaluations: int
      /// The held-out decrease at γ/slopeProbe over the prediction there (slopeOverPredicted); NaN when
      /// nothing was added or nothing predicted.
      SlopeOverPredicted: float
      /// The held-out decrease at the chosen γ in standard errors of its per-sample differences (a paired z:
      /// mean(L_i(0) − L_i(γ)) / (sd/√n)); NaN when not measured (no acceptance test, or the margin refused).
      HeldOutZ: float
      /// Where the γ search started (γ₁; NaN: no search).
      SearchStart: float
      /// The γ borrowed from the other junctions of the junction's kind, where the search started (startOf;
      /// NaN: none, the junction's own start).
      BorrowedStart: float
      /// Where this junction's next γ search starts: the γ chosen, or after a refusal the smallest γ
      /// tried (NaN: no search; the next start is then unchanged).
      NextStart: float
      StatisticsSeconds: float
      SolveSeconds: float
      SearchSeconds: float
      ApplySeconds: float }

/// The measured decrease at the chosen γ over the first-order prediction at that γ: about 1/2 for
/// an honest prediction at the γ that minimises a loss quadratic in γ^p. NaN (null in metrics.jsonl)
/// when nothing was added or nothing was predicted.
let measuredOverPredicted (e: GrowthEvent) =
    if e.Added > 0 && e.PredictedDecrease > 0.0 then e.MeasuredDecrease / e.PredictedDecrease else nan

/// The paired z of a held-out decrease: mean(d) / (sd(d)/√n) with d_i = before_i − after_i, the same samples
/// before and after (their common difficulty cancels). +∞ when every d_i is the same positive number, NaN with
/// fewer than two samples.
let pairedZ (before: float[]) (after: float[]) =
    if before.Length <> after.Length then invalidArg (nameof after) $"{after.Length} losses after for {before.Length} before."
    let n = before.Length
    if n < 2 then nan
    else
        let d = Array.map2 (-) before after
        let mean = Array.average d
        let error = Statistics.meanStandardError d
        if error = 0.0 then (if mean > 0.0 then infinity elif mean < 0.0 then -infinity else 0.0)
        else mean / error

/// The slope probe divides the chosen γ by this: at γ/16 a loss quadratic in γ keeps 1 − 1/32 of its
/// first-order decrease when γ is at its minimum, so the probe measures the held-out slope to about 3 %.
let slopeProbe = 16.0

/// (L(0) − L(γ/slopeProbe)) / predicted(γ/slopeProbe) on the held-out samples: whether the prediction's
/// first-order slope is the held-out one (≈ 1 when honest). measured_over_predicted is about half of it
/// when the search lands on the minimum of a loss quadratic in γ^p, so the two separate a prediction
/// that is off (this ratio) from a γ that is off (their quotient, ½ at the minimum). NaN when γ = 0
/// or nothing is predicted.
let slopeOverPredicted (gamma: float) (predicted: float -> float) (lossAt: float -> float) (loss0: float) =
    if gamma > 0.0 then
        let g = gamma / slopeProbe
        let p = predicted g
        if p > 0.0 && Double.IsFinite p then (loss0 - lossAt g) / p else nan
    else nan

/// How far above the acceptance margin the first-order decrease must be where a search starts.
let startFloorMargins = 100.0

/// The lowest start of a warm γ search: the γ at which the proposal's first-order decrease γ^p·pred(1)
/// is `startFloorMargins` times the acceptance margin of the loss (0 when nothing is predicted). Refusals
/// in a row walk the next start down (lineSearchFrom); without a floor a junction whose proposals were
/// refused a few times searched only at γ whose decrease no float32 loss can show (measured on the
/// Fashion-MNIST CNN: 1 → 2⁻¹⁴ in seven refusals), and so refused every later proposal, good or not.
let startFloor (power: int) (predictedAtOne: float) (loss0: float) =
    if predictedAtOne > 0.0 && Double.IsFinite predictedAtOne then
        (startFloorMargins * acceptanceMargin * abs loss0 / predictedAtOne) ** (1.0 / float power)
    else 0.0

/// A junction's kind for borrowing γ starts: its class and what A and B are (the CNN's conv → conv
/// junctions are one kind, its conv → pooled dense and dense → head junctions two others; ResNet-20's
/// nine in-block junctions one).
let junctionKind (junction: IJunction) = $"{junction.GetType().Name}:{junction.A.Kind}>{junction.B.Kind}"

/// The start junction j may borrow (startOf) while it has accepted no γ of its own: the median of the γ last
/// accepted by the other junctions of its kind (`accepted`, 0: none); NaN once j has accepted one, or when no other
/// junction of its kind has.
let borrowedStart (kinds: string[]) (accepted: float[]) (j: int) =
    let alike =
        [| for k in 0 .. min kinds.Length accepted.Length - 1 do
             if k <> j && j < kinds.Length && kinds[k] = kinds[j] && accepted[k] > 0.0 && Double.IsFinite accepted[k] then yield accepted[k] |]
        |> Array.sort
    if j < accepted.Length && accepted[j] > 0.0 then nan
    elif alike.Length = 0 then nan
    else alike[(alike.Length - 1) / 2]

/// Where a proposal's search starts, and the borrowed γ it starts at (NaN: none): a unit proposal (FanOutAmplitude)
/// starts at `borrowed` (borrowedStart) when there is one; otherwise, and for a scaled proposal or one of no neuron,
/// at the junction's own `start`. The junction's refusals walked its own start down, to fan-out scales at which a
/// unit feature changes nothing measurable, while its kind's new features, at the same unit scale, took fan-out
/// scales alike (ResNet-20, whole split, seed 1: junction 0 searched from 1, 0.25, 0.06 and 0.35 while the others
/// accepted 23–410). A scaled proposal's γ scales its features too, so another junction's γ says nothing of it.
let startOf (proposal: NeuronProposal) (start: float) (borrowed: float) =
    if proposal.FanOutAmplitude && proposal.Count > 0 && Double.IsFinite borrowed && borrowed > 0.0 then borrowed, borrowed
    else start, nan

/// Held-out samples on which spreads are measured (RMS estimates; the loss uses all of them).
let spreadSamples = 512L

/// Spreads of junction j's proposal on (the first `spreadSamples` of) the held-out inputs.
let spreadsOf (net: Network) (j: int) (proposal: NeuronProposal) (statistics: JunctionStatistics) (heldX: torch.Tensor) =
    use _ = torch.no_grad ()
    use scope = torch.NewDisposeScope ()
    let _, records = net.ForwardRecording (heldX.narrow (0L, 0L, min spreadSamples heldX.shape[0]))
    Amplitude.measure net.Junctions[j] proposal statistics records[j].AInput

/// Searches γ for junction j's proposal below the amplitude bound (`amplitudeRatio`, see
/// Amplitude; ≤ 0: none), starting at `start` (see lineSearchFrom; NaN: the cold search), and
/// applies it if γ > 0; a unit proposal starts at `borrowed` instead when there is one (startOf, borrowedStart).
/// The committed network is the one the search measured: the same apply at the same γ.
/// `acceptanceZ` > 0: the chosen γ is also refused unless its held-out decrease is at least that many
/// standard errors of the per-sample differences (pairedZ; one more loss evaluation), so that a decrease
/// the held-out samples cannot tell from noise adds nothing. 0: the float32 rounding margin alone.
/// `slopeProbe`: an accepted candidate's held-out slope is measured (slopeOverPredicted; one more loss evaluation), a
/// diagnostic of the prediction (Growth:SlopeProbe). The search uses the loss model of the proposal's AmplitudePower
/// (lineSearchModel).
/// `samples`: junction j's held-out samples kept from the network as it is (CandidateLoss.keepSearchSamples), which
/// the search evaluates every candidate on.
let growJunctionOn (acceptanceZ: float) (slopeProbe: bool) (start: float) (borrowed: float) (amplitudeRatio: float) (net: Network) (j: int) (proposal: NeuronProposal)
                   (statistics: JunctionStatistics) (samples: SearchSamples) : GrowthEvent =
    let clock = Diagnostics.Stopwatch.StartNew ()
    let junction = net.Junctions[j]
    // A proposal with a fixed Amplitude (GradMax's zero fan-in leaves the loss unchanged at every
    // γ) is applied at that γ without a search or the acceptance margin; its loss is still measured.
    let fixedAmplitude = proposal.Amplitude.HasValue && proposal.Count > 0
    let start, borrowed = startOf proposal start borrowed
    let spreads, bound, search, start, slope, heldOutZ, accepted =
        use searchScope = torch.NewDisposeScope () // the search's temporaries go with it
        let start = if Double.IsFinite start && start > 0.0 then max start (startFloor proposal.AmplitudePower (proposal.PredictedDecrease 1.0) samples.Loss0) else start
        let spreads =
            // γ does not scale a unit proposal's features (FanOutAmplitude): there is nothing to bound.
            if proposal.Count > 0 && amplitudeRatio > 0.0 && Amplitude.isBounded junction && not proposal.FanOutAmplitude then
                let point = samples.Points[0]
                let rows = min spreadSamples point.AInput.shape[0]
                // A's existing channels were computed by the probe forward: only the new ones are.
                let kept : torch.Tensor | null = match point.AOutput with NonNull a -> a.narrow (0L, 0L, rows) | Null -> null
                Some (Amplitude.measureGiven junction proposal statistics (point.AInput.narrow (0L, 0L, rows)) kept)
            else None
        let bound =
            match spreads with
            | Some s -> Amplitude.gammaBound amplitudeRatio s
            // A unit proposal's features are at the existing units' scale; what γ scales is the fan-out.
            | None when proposal.FanOutAmplitude && proposal.Count > 0 && amplitudeRatio > 0.0 -> NewUnits.fanOutBound amplitudeRatio junction proposal
            | None -> infinity
        let change = if fixedAmplitude then None else linearChange net samples proposal statistics
        let lossAt gamma = if gamma = 0.0 then samples.Loss0 else candidateLossWith change net samples proposal statistics gamma
        let search =
            // No neuron and no update of the existing weights: every γ is the network as it is, nothing to search.
            if proposal.Count = 0 && isNull proposal.Delta then
                { Gamma = 0.0; Loss = samples.Loss0; Loss0 = samples.Loss0; Evaluations = 1; Lowest = infinity }
            elif fixedAmplitude then
                { Gamma = proposal.Amplitude.Value; Loss = lossAt proposal.Amplitude.Value; Loss0 = lossAt 0.0; Evaluations = 2; Lowest = proposal.Amplitude.Value }
            else lineSearchModel proposal.AmplitudePower start bound lossAt 24
        // A decrease within rounding of the loss (float32: ~1e-7 relative) is noise, not a reason to
        // add neurons: below this margin γ = 0 wins. A γ whose loss is above L(0) is never accepted.
        let overMargin = not fixedAmplitude && search.Loss0 - search.Loss > acceptanceMargin * abs search.Loss0
        // The held-out test: one more loss evaluation, per sample, at the chosen γ (L_i(0) were kept with the samples).
        let z = if overMargin && acceptanceZ > 0.0 then pairedZ samples.Losses0 (candidateLossesWith change net samples proposal statistics search.Gamma) else nan
        let search = if Double.IsNaN z then search else { search with Evaluations = search.Evaluations + 1 }
        let accepted = overMargin && (acceptanceZ <= 0.0 || z >= acceptanceZ)
        // One more loss evaluation, for accepted searched candidates only, when asked (Growth:SlopeProbe): the held-out slope.
        let slope = if accepted && slopeProbe then slopeOverPredicted search.Gamma proposal.PredictedDecrease lossAt search.Loss0 else nan
        let search = if Double.IsNaN slope || not accepted then search else { search with Evaluations = search.Evaluations + 1 }
        spreads, bound, search, start, slope, z, accepted
    let gamma, loss = if fixedAmplitude || accepted then search.Gamma, search.Loss else 0.0, search.Loss0
    let searchSeconds = clock.Elapsed.TotalSeconds
    clock.Restart ()
    if gamma > 0.0 then Candidate.commit (Candidate.apply net j proposal statistics gamma)
    let spreadAt (f: Amplitude.Spreads -> float) = spreads |> Option.map f |> Option.defaultValue nan
    { Junction = j
      Added = (if gamma > 0.0 then proposal.Count else 0)
      Proposed = proposal.Count
      Gamma = gamma
      PredictedDecrease = proposal.PredictedDecrease gamma
      PredictedDecreaseError = (if gamma > 0.0 && proposal.Count > 0 then proposal.PredictedDecreaseError gamma else nan)
      MeasuredDecrease = search.Loss0 - loss
      Bottleneck = proposal.Bottleneck
      Width = junction.A.OutputWidth
      LossBefore = search.Loss0
      LossAfter = loss
      GammaBound = bound
      ExistingSpread = spreadAt (fun s -> s.Existing)
      NewSpread = spreadAt (fun s -> gamma * s.NewLargestAtOne)
      NewSpreadMedian = spreadAt (fun s -> gamma * s.NewMedianAtOne)
      LossEvaluations = search.Evaluations
      SlopeOverPredicted = slope
      HeldOutZ = heldOutZ
      SearchStart = (if fixedAmplitude || not (bound > 0.0) then nan else firstGamma start bound)
      BorrowedStart = (if fixedAmplitude || not (bound > 0.0) then nan else borrowed)
      // After a refusal the next search starts where this one gave up, so that refusals in a row walk
      // the start down (4 grid points each) instead of retrying the same γ₁ for ever.
      NextStart = (if gamma > 0.0 then gamma elif fixedAmplitude || not (Double.IsFinite search.Lowest) then nan else search.Lowest)
      StatisticsSeconds = 0.0
      SolveSeconds = 0.0
      SearchSeconds = searchSeconds
      ApplySeconds = clock.Elapsed.TotalSeconds }

/// growJunctionOn the samples kept from (heldX, heldY), released with the search (what it applies outlives the
/// scope: growable layers hold their tensors in parameters of no scope, Cells.parameter).
let growJunctionTested (acceptanceZ: float) (slopeProbe: bool) (start: float) (borrowed: float) (amplitudeRatio: float) (net: Network) (j: int) (proposal: NeuronProposal)
                       (statistics: JunctionStatistics) (heldX: torch.Tensor) (heldY: torch.Tensor) : GrowthEvent =
    use searchScope = torch.NewDisposeScope ()
    growJunctionOn acceptanceZ slopeProbe start borrowed amplitudeRatio net j proposal statistics (keepSearchSamples net j heldX heldY)

/// growJunctionTested without the held-out test (the rounding margin alone decides), with the slope probe.
let growJunctionFrom (start: float) (amplitudeRatio: float) (net: Network) (j: int) (proposal: NeuronProposal) (statistics: JunctionStatistics)
                     (heldX: torch.Tensor) (heldY: torch.Tensor) : GrowthEvent =
    growJunctionTested 0.0 true start nan amplitudeRatio net j proposal statistics heldX heldY

/// growJunctionFrom with the cold search.
let growJunctionWithin (amplitudeRatio: float) (net: Network) (j: int) (proposal: NeuronProposal) (statistics: JunctionStatistics)
                       (heldX: torch.Tensor) (heldY: torch.Tensor) : GrowthEvent =
    growJunctionFrom nan amplitudeRatio net j proposal statistics heldX heldY

/// growJunctionWithin with the default amplitude bound.
let growJunction (net: Network) (j: int) (proposal: NeuronProposal) (statistics: JunctionStatistics) (heldX: torch.Tensor) (heldY: torch.Tensor) : GrowthEvent =
    growJunctionWithin Amplitude.defaultRatio net j proposal statistics heldX heldY
