/// Stage 3 of a growth step (DESIGN §4.1, §4.6): the amplitude γ, by line search on held-out training
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

/// What a γ search found: γ, the loss there and at 0, and how many loss evaluations it took.
type SearchResult =
    { Gamma: float
      Loss: float
      Loss0: float
      Evaluations: int
      /// The smallest γ > 0 evaluated (+∞: none).
      Lowest: float }

/// The point of the search's grid (1·√2^k) nearest to `gamma` (> 0).
let gridPoint (gamma: float) = 2.0 ** (Math.Round (2.0 * Math.Log2 gamma) / 2.0)

/// The first γ a search from `start` evaluates: the grid point of `start` below `gammaMax`; a start
/// that is not a positive finite number means 1 (the cold search).
let firstGamma (start: float) (gammaMax: float) =
    min gammaMax (if start > 0.0 && Double.IsFinite start then gridPoint start else 1.0)

/// Grid points a γ search walks down from γ₁ looking for any decrease before it refuses the proposal:
/// 4 is a factor 4 in γ, 16 in the γ² decrease of the first order. A proposal that lowers the loss at
/// none of them is refused (γ = 0). Walking on to 2⁻¹² of γ₁ (as before) cost 26 loss evaluations per
/// refusal; measured over 711 growth steps (Fashion-MNIST and CIFAR-10-shaped inputs, docs/notebook/2026-11-30-statistics-from-training.md),
/// a fifth of the steps were refused, their searches held 40 % of all evaluations, and of the accepted
/// γ only 1.8 % lay more than 4 grid points below γ₁.
let refusalSteps = 4

/// Relative loss decrease below which a candidate is treated as no better than γ = 0.
let acceptanceMargin = 1e-6

/// γ at the minimum of the loss model L(γ) = L(0) − a·γ^p + c·γ^2p (first order and the curvature of the loss along
/// the candidate, in t = γ^p) through L(0) and two evaluated points (γ1, L1), (γ2, L2), γ1 < γ2; NaN when the model
/// has no minimum there (a ≤ 0 or c ≤ 0). p = the proposal's AmplitudePower: a unit proposal changes B's output
/// linearly in γ (p = 1); a scaled one's new features are γ²·ωσ(αx) to first order (p = 2).
let modelMinimum (power: int) (l0: float) (g1: float) (l1: float) (g2: float) (l2: float) =
    let t1, t2 = g1 ** float power, g2 ** float power
    let d1, d2 = l0 - l1, l0 - l2
    let den = t1 * t2 * (t2 - t1)
    let a = (d1 * t2 * t2 - d2 * t1 * t1) / den
    let c = (d1 * t2 - d2 * t1) / den
    if a > 0.0 && c > 0.0 && Double.IsFinite a && Double.IsFinite c then (a / (2.0 * c)) ** (1.0 / float power) else nan

/// lineSearchFrom, with the loss model (modelMinimum, `power` > 0; 0: the walk alone) saving the evaluations of a long
/// way up: after a step up that lowered the loss, the model's minimum through the last two points, when it lies at
/// least two grid points further up, is evaluated next; if it is below the last point the search goes on from there
/// (up while the loss falls, else down while it falls), if not it walks on as without the model. The jump only ever
/// moves to a lower loss, so on a loss unimodal in γ the search ends on the walk's γ: one evaluation more when the
/// jump overshoots, several fewer when the answer lies far up (a cold search from 1 to 64 walks 12 grid points). The
/// walk down is not skipped on the model's word: on a loss that saturates (L = e^(−x) + 0.01x) a quadratic through L(0)
/// and two points past the minimum puts it above them, and skipping the step down there kept 86 % of the decrease.
let lineSearchModel (power: int) (start: float) (gammaMax: float) (lossAt: float -> float) (maxSteps: int) : SearchResult =
    let factor = sqrt 2.0
    let mutable evaluations = 0
    let mutable lowest = infinity
    // A γ the walk reaches again after a jump that overshot is not evaluated twice.
    let seen = Collections.Generic.Dictionary<float, float> ()
    let lossAt g =
        match seen.TryGetValue g with
        | true, l -> l
        | _ ->
            evaluations <- evaluations + 1
            if g > 0.0 then lowest <- min lowest g
            let l = lossAt g
            seen[g] <- l
            l
    let l0 = lossAt 0.0
    let result gamma loss = { Gamma = gamma; Loss = loss; Loss0 = l0; Evaluations = evaluations; Lowest = lowest }
    if not (gammaMax > 0.0) then result 0.0 l0
    else
        /// Moves γ by `step` while the loss keeps falling, never above gammaMax. `mayJump`: going up, the model may
        /// jump ahead once.
        let rec follow (step: float) gamma loss k mayJump =
            if k >= maxSteps || (step > 1.0 && gamma >= gammaMax) then gamma, loss
            else
                // Snapped to the grid so that every start walks the same points 2^(k/2), bit for bit.
                let g = min gammaMax (gridPoint (gamma * step))
                let next = lossAt g
                if next < loss then
                    let jump =
                        if mayJump && power > 0 && step > 1.0 && g < gammaMax then
                            let m = modelMinimum power l0 gamma loss g next
                            if m >= g * step * step then min gammaMax (gridPoint m) else nan
                        else nan
                    if jump > 1.01 * g * step && k + 1 < maxSteps then
                        let lj = lossAt jump
                        if lj < next then around jump lj false else follow step g next (k + 1) false
                    else follow step g next (k + 1) mayJump
                else gamma, loss
        /// From a γ whose loss is below L(0): up while the loss falls; if not even one step, down.
        and around g l mayJump =
            let gamma, loss = follow factor g l 0 mayJump
            // Stopped where it started: the best γ may lie below it (L barely under L(0)).
            if gamma = g then follow (1.0 / factor) g l 0 false else gamma, loss
        let g1 = firstGamma start gammaMax
        let l1 = lossAt g1
        if l1 < l0 then
            let gamma, loss = around g1 l1 true
            result gamma loss
        else
            // Down two grid points at a time: a loss below L(0) on an interval from 0 (unimodal in γ) is below it at
            // γ/2 whenever it is at γ/√2, so the point between is evaluated only once γ/2 is below L(0), where the walk
            // of one point at a time would have found it first. The same γ on such losses, and a refusal in
            // refusalSteps/2 evaluations below γ₁ instead of refusalSteps.
            let limit = min maxSteps refusalSteps
            let rec down gamma k =
                if k >= limit then 0.0, l0
                else
                    let g = gridPoint (gamma / factor)
                    if k + 2 > limit then
                        let l = lossAt g
                        if l < l0 then follow (1.0 / factor) g l k false else 0.0, l0
                    else
                        let g2 = gridPoint (g / factor)
                        let l2 = lossAt g2
                        if l2 < l0 then
                            let l = lossAt g
                            if l < l0 then follow (1.0 / factor) g l k false else follow (1.0 / factor) g2 l2 (k + 1) false
                        else down g2 (k + 2)
            let gamma, loss = down g1 0
            result gamma loss

/// γ search on the √2 grid 2^(k/2) (and gammaMax) below `gammaMax` (+∞: unbounded) starting at `start`: γ = 0 is always a
/// choice (it means "add nothing now"). From γ₁ = min(grid point of `start`, gammaMax) the search
/// goes up while the loss keeps falling (never capped: the last step up lands on gammaMax itself
/// when the grid would cross it), or, if the next γ is no better, down while it keeps falling; if
/// γ₁ is no better than γ = 0 it goes down (at most `refusalSteps` grid points, two at a time) until the loss falls
/// below the loss at 0, then on down while it keeps falling (the first γ below L(0) can hold a small part of the available decrease).
/// Every start on the grid ends on the same γ when the loss is unimodal in γ; a start near the answer
/// (e.g. the γ chosen for the junction last time) saves the evaluations of the way there from 1.
/// Without the loss model: lineSearchModel with power 0.
let lineSearchFrom (start: float) (gammaMax: float) (lossAt: float -> float) (maxSteps: int) : SearchResult =
    lineSearchModel 0 start gammaMax lossAt maxSteps

/// The cold search: lineSearchFrom γ₁ = 1.
let lineSearchWithin (gammaMax: float) (lossAt: float -> float) (maxSteps: int) : SearchResult =
    lineSearchFrom 1.0 gammaMax lossAt maxSteps

/// The unbounded search. Returns (γ, loss at γ, loss at 0).
let lineSearch (lossAt: float -> float) (maxSteps: int) : float * float * float =
    let r = lineSearchWithin infinity lossAt maxSteps
    r.Gamma, r.Loss, r.Loss0

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
let growJunctionTested (acceptanceZ: float) (slopeProbe: bool) (start: float) (borrowed: float) (amplitudeRatio: float) (net: Network) (j: int) (proposal: NeuronProposal)
                       (statistics: JunctionStatistics) (heldX: torch.Tensor) (heldY: torch.Tensor) : GrowthEvent =
    let clock = Diagnostics.Stopwatch.StartNew ()
    let junction = net.Junctions[j]
    // A proposal with a fixed Amplitude (GradMax's zero fan-in leaves the loss unchanged at every
    // γ) is applied at that γ without a search or the acceptance margin; its loss is still measured.
    let fixedAmplitude = proposal.Amplitude.HasValue && proposal.Count > 0
    let start, borrowed = startOf proposal start borrowed
    let spreads, bound, search, start, slope, heldOutZ, accepted =
        use searchScope = torch.NewDisposeScope () // the kept samples go with the search
        let samples = keepSearchSamples net j heldX heldY
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
