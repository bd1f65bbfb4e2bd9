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

/// Adds one batch's rows of `junction` (`count` samples of the `total` the statistics are taken on) to
/// `acc`. With groups and `splitBatch`, the batch's samples are split into min(groups, count)
/// consecutive chunks, chunk k going to group k: every group sees every batch, so in a window over
/// training batches (weights moving between batches) the drift is common to all groups and the
/// significance test does not count it as noise; rows of one sample stay in one group. It costs
/// `groups` row extractions and sets of small products per batch instead of one (measured: 2× the
/// growth time of a pass), so a statistics pass, whose weights do not move, keeps whole batches as
/// groups (`Add`).
let addBatchRows (acc: Statistics.JunctionAccumulator) (groups: int) (splitBatch: bool) (rowsPerDimension: int) (junction: IJunction)
                 (record: JunctionRecord) (grad: torch.Tensor) (count: int64) (total: int64) (generator: torch.Generator | null) =
    if groups <= 0 || not splitBatch then
        use rows = junction.Rows (record, grad, rowsPerBatch rowsPerDimension junction count total, generator)
        acc.Add rows
    else
        let chunks = min (int64 groups) count
        for k in 0L .. chunks - 1L do
            use scope = torch.NewDisposeScope ()
            let start = k * count / chunks
            let size = (k + 1L) * count / chunks - start
            let part (t: torch.Tensor) = t.narrow (0L, start, size)
            let chunk = JunctionRecord (part record.AInput, part record.BInput, part record.BOutput)
            use rows = junction.Rows (chunk, part grad, rowsPerBatch rowsPerDimension junction size total, generator)
            acc.AddToGroup (rows, int k)

/// Statistics of the given junctions over (x, y), in that order: per batch one probe forward
/// (batch statistics; running ones untouched) and one backward of the *sum* of the loss (so that g
/// is a per-sample gradient) to those junctions only, then GEMM sums over the rows each keeps.
/// With `groups` > 0, M2 and P are also kept per group of whole batches (JunctionStatistics.GroupM2/GroupP).
/// `givenS2 j`: an S2 of junction j known ahead (its product is then not formed, see
/// Statistics.JunctionAccumulator), or null. `keepRows`: rows each junction keeps as its RowSample (0: none).
let statisticsWith (keepRows: int) (givenS2: int -> torch.Tensor | null) (groups: int) (junctions: int[]) (rowsPerDimension: int) (generator: torch.Generator | null)
                   (net: Network) (x: torch.Tensor) (y: torch.Tensor) (batchSize: int64) : JunctionStatistics[] =
    let accumulators = junctions |> Array.map (fun j -> Statistics.JunctionAccumulator (groups, givenS2 j, KeepRows = keepRows))
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
            addBatchRows accumulators[k] groups false rowsPerDimension net.Junctions[junctions[k]] records[junctions[k]] grads[k] count n generator
        start <- start + count
    accumulators |> Array.map (fun a -> a.Finish ())

/// statisticsWith, every product formed.
let statisticsGrouped (groups: int) (junctions: int[]) (rowsPerDimension: int) (generator: torch.Generator | null) (net: Network)
                      (x: torch.Tensor) (y: torch.Tensor) (batchSize: int64) : JunctionStatistics[] =
    statisticsWith 0 (fun _ -> null) groups junctions rowsPerDimension generator net x y batchSize

/// statisticsGrouped without groups.
let statisticsFor (junctions: int[]) (rowsPerDimension: int) (generator: torch.Generator | null) (net: Network)
                  (x: torch.Tensor) (y: torch.Tensor) (batchSize: int64) : JunctionStatistics[] =
    statisticsGrouped 0 junctions rowsPerDimension generator net x y batchSize

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
/// refusal; measured over 711 growth steps (Fashion-MNIST and CIFAR-10-shaped inputs, docs/results.md),
/// a fifth of the steps were refused, their searches held 40 % of all evaluations, and of the accepted
/// γ only 1.8 % lay more than 4 grid points below γ₁.
let refusalSteps = 4

/// γ search on the √2 grid 2^(k/2) (and gammaMax) below `gammaMax` (+∞: unbounded) starting at `start`: γ = 0 is always a
/// choice (it means "add nothing now"). From γ₁ = min(grid point of `start`, gammaMax) the search
/// goes up while the loss keeps falling (never capped: the last step up lands on gammaMax itself
/// when the grid would cross it), or, if the next γ is no better, down while it keeps falling; if
/// γ₁ is no better than γ = 0 it goes down (at most `refusalSteps` grid points) until the loss falls
/// below the loss at 0, then on down while it keeps falling (the first γ below L(0) can hold a small part of the available decrease).
/// Every start on the grid ends on the same γ when the loss is unimodal in γ; a start near the answer
/// (e.g. the γ chosen for the junction last time) saves the evaluations of the way there from 1.
let lineSearchFrom (start: float) (gammaMax: float) (lossAt: float -> float) (maxSteps: int) : SearchResult =
    let factor = sqrt 2.0
    let mutable evaluations = 0
    let mutable lowest = infinity
    let lossAt g =
        evaluations <- evaluations + 1
        if g > 0.0 then lowest <- min lowest g
        lossAt g
    let l0 = lossAt 0.0
    let result gamma loss = { Gamma = gamma; Loss = loss; Loss0 = l0; Evaluations = evaluations; Lowest = lowest }
    if not (gammaMax > 0.0) then result 0.0 l0
    else
        /// Moves γ by `step` while the loss keeps falling, never above gammaMax.
        let rec follow (step: float) gamma loss k =
            if k >= maxSteps || (step > 1.0 && gamma >= gammaMax) then gamma, loss
            else
                // Snapped to the grid so that every start walks the same points 2^(k/2), bit for bit.
                let g = min gammaMax (gridPoint (gamma * step))
                let next = lossAt g
                if next < loss then follow step g next (k + 1) else gamma, loss
        let g1 = firstGamma start gammaMax
        let l1 = lossAt g1
        if l1 < l0 then
            let gamma, loss = follow factor g1 l1 0
            // Stopped at γ₁: the best γ may lie below it (L(γ₁) barely under L(0)).
            let gamma, loss = if gamma = g1 then follow (1.0 / factor) g1 l1 0 else gamma, loss
            result gamma loss
        else
            let rec down gamma k =
                if k >= min maxSteps refusalSteps then 0.0, l0
                else
                    let g = gridPoint (gamma / factor)
                    let l = lossAt g
                    if l < l0 then follow (1.0 / factor) g l k else down g (k + 1)
            let gamma, loss = down g1 0
            result gamma loss

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
      Gamma: float
      PredictedDecrease: float
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
      /// Where the γ search started (γ₁; NaN: no search).
      SearchStart: float
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

/// Loss on the held-out samples with the candidate (j, proposal, γ) applied, then undone.
let candidateLoss (net: Network) (j: int) (proposal: NeuronProposal) (statistics: JunctionStatistics) (heldX: torch.Tensor) (heldY: torch.Tensor) (gamma: float) =
    use scope = torch.NewDisposeScope () // the candidate's temporaries go with it
    let applied = apply net j proposal statistics gamma
    try Training.probeLoss net heldX heldY
    finally undo applied

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
      Loss0: float }

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
             yield point, labels |]
    { Points = Array.map fst kept; Labels = Array.map snd kept; Count = n; Loss0 = lossSum / float n }

/// candidateLoss from kept search samples: the same loss to rounding, without the layers before A
/// nor A's existing channels.
let candidateLossFrom (net: Network) (samples: SearchSamples) (proposal: NeuronProposal) (statistics: JunctionStatistics) (gamma: float) =
    use _ = torch.no_grad ()
    use scope = torch.NewDisposeScope ()
    let applied = apply net samples.Points[0].Junction proposal statistics gamma
    try
        let mutable lossSum = 0.0
        for point, labels in Array.zip samples.Points samples.Labels do
            use chunk = torch.NewDisposeScope ()
            lossSum <- lossSum + Training.crossEntropySum (net.ForwardFrom (point, ForwardPass.Probe)) labels
        lossSum / float samples.Count
    finally undo applied

/// Relative loss decrease below which a candidate is treated as no better than γ = 0.
let acceptanceMargin = 1e-6

/// How far above the acceptance margin the first-order decrease must be where a search starts.
let startFloorMargins = 100.0

/// The lowest start of a warm γ search: the γ at which the proposal's first-order decrease γ²·pred(1)
/// is `startFloorMargins` times the acceptance margin of the loss (0 when nothing is predicted). Refusals
/// in a row walk the next start down (lineSearchFrom); without a floor a junction whose proposals were
/// refused a few times searched only at γ whose decrease no float32 loss can show (measured on the
/// Fashion-MNIST CNN: 1 → 2⁻¹⁴ in seven refusals), and so refused every later proposal, good or not.
let startFloor (predictedAtOne: float) (loss0: float) =
    if predictedAtOne > 0.0 && Double.IsFinite predictedAtOne then
        sqrt (startFloorMargins * acceptanceMargin * abs loss0 / predictedAtOne)
    else 0.0

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
/// applies it if γ > 0. The committed network is the one the search measured: the same apply at the same γ.
let growJunctionFrom (start: float) (amplitudeRatio: float) (net: Network) (j: int) (proposal: NeuronProposal) (statistics: JunctionStatistics)
                       (heldX: torch.Tensor) (heldY: torch.Tensor) : GrowthEvent =
    let clock = Diagnostics.Stopwatch.StartNew ()
    let junction = net.Junctions[j]
    // A proposal with a fixed Amplitude (GradMax's zero fan-in leaves the loss unchanged at every
    // γ) is applied at that γ without a search or the acceptance margin; its loss is still measured.
    let fixedAmplitude = proposal.Amplitude.HasValue && proposal.Count > 0
    let spreads, bound, search, start =
        use searchScope = torch.NewDisposeScope () // the kept samples go with the search
        let samples = keepSearchSamples net j heldX heldY
        let start = if Double.IsFinite start && start > 0.0 then max start (startFloor (proposal.PredictedDecrease 1.0) samples.Loss0) else start
        let spreads =
            // γ does not scale a unit proposal's features (FanOutAmplitude): there is nothing to bound.
            if proposal.Count > 0 && amplitudeRatio > 0.0 && Amplitude.isBounded junction && not proposal.FanOutAmplitude then
                let aInput = samples.Points[0].AInput
                Some (Amplitude.measure junction proposal statistics (aInput.narrow (0L, 0L, min spreadSamples aInput.shape[0])))
            else None
        let bound = spreads |> Option.map (Amplitude.gammaBound amplitudeRatio) |> Option.defaultValue infinity
        let lossAt gamma = if gamma = 0.0 then samples.Loss0 else candidateLossFrom net samples proposal statistics gamma
        let search =
            if fixedAmplitude then
                { Gamma = proposal.Amplitude.Value; Loss = lossAt proposal.Amplitude.Value; Loss0 = lossAt 0.0; Evaluations = 2; Lowest = proposal.Amplitude.Value }
            else lineSearchFrom start bound lossAt 24
        spreads, bound, search, start
    // A decrease within rounding of the loss (float32: ~1e-7 relative) is noise, not a reason to
    // add neurons: below this margin γ = 0 wins. A γ whose loss is above L(0) is never accepted.
    let gamma, loss =
        if fixedAmplitude || search.Loss0 - search.Loss > acceptanceMargin * abs search.Loss0 then search.Gamma, search.Loss
        else 0.0, search.Loss0
    let searchSeconds = clock.Elapsed.TotalSeconds
    clock.Restart ()
    if gamma > 0.0 then commit (apply net j proposal statistics gamma)
    let spreadAt (f: Amplitude.Spreads -> float) = spreads |> Option.map f |> Option.defaultValue nan
    { Junction = j
      Added = (if gamma > 0.0 then proposal.Count else 0)
      Gamma = gamma
      PredictedDecrease = proposal.PredictedDecrease gamma
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
      SearchStart = (if fixedAmplitude || not (bound > 0.0) then nan else firstGamma start bound)
      // After a refusal the next search starts where this one gave up, so that refusals in a row walk
      // the start down (4 grid points each) instead of retrying the same γ₁ for ever.
      NextStart = (if gamma > 0.0 then gamma elif fixedAmplitude || not (Double.IsFinite search.Lowest) then nan else search.Lowest)
      StatisticsSeconds = 0.0
      SolveSeconds = 0.0
      SearchSeconds = searchSeconds
      ApplySeconds = clock.Elapsed.TotalSeconds }

/// growJunctionFrom with the cold search.
let growJunctionWithin (amplitudeRatio: float) (net: Network) (j: int) (proposal: NeuronProposal) (statistics: JunctionStatistics)
                       (heldX: torch.Tensor) (heldY: torch.Tensor) : GrowthEvent =
    growJunctionFrom nan amplitudeRatio net j proposal statistics heldX heldY

/// growJunctionWithin with the default amplitude bound.
let growJunction (net: Network) (j: int) (proposal: NeuronProposal) (statistics: JunctionStatistics) (heldX: torch.Tensor) (heldY: torch.Tensor) : GrowthEvent =
    growJunctionWithin Amplitude.defaultRatio net j proposal statistics heldX heldY

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

/// A junction's input covariance S2 and its whitening W (WᵀW = S2⁺, an explicit r×D2 matrix),
/// kept for the whole run when A reads the network's input (DESIGN §4.5): the statistics pass then
/// skips S2 and the strategy skips the factorisation. With what it cost (an `input_covariance` line).
type InputCovariance =
    { S2: torch.Tensor
      Whitening: torch.Tensor
      Samples: int64
      /// "cholesky" or "eigh", and the precision it ran in.
      Path: string
      StatisticsSeconds: float
      FactorSeconds: float }
    interface IDisposable with
        member this.Dispose () =
            this.S2.Dispose ()
            this.Whitening.Dispose ()

/// A factor W (WᵀW = S2⁺) of the statistics' S2, float64, factorised in the precision the rows were
/// formed in. Float32 rows leave rounding of about D·u₃₂·λmax in S2 (Bottleneck.roundingLevel), which
/// the cutoff already discards; a float32 factorisation adds an error of O(u₃₂)·λmax to S2, which the
/// whitening amplifies in its small directions: measured (`make bench ARGS=whitening-precision`), the
/// proposal's λ_k move by at most 2e-5 (D2 = 785) to 1.6e-3 (3,073) relative, far inside the sampling
/// noise of statistics from thousands of samples, for 0.44× the time (eigh of a 3,073² S2 is the
/// largest single cost of growing on CIFAR-10 inputs). Float64 rows keep a float64 factorisation,
/// and with it the float64 tests' 1e-10.
let whiteningOf (stats: JunctionStatistics) (cutoff: float) : torch.Tensor * string =
    let formedInFloat32 = stats.UnitRoundoff > 1e-12
    use s2 = if formedInFloat32 then stats.S2.to_type torch.ScalarType.Float32 else stats.S2.alias ()
    use factor = LinearAlgebra.psdFactor s2 cutoff
    let precision = if formedInFloat32 then "float32" else "float64"
    match factor with
    | LinearAlgebra.Cholesky l ->
        use l64 = l.to_type torch.ScalarType.Float64
        use eye = torch.eye (l.shape[0], dtype = torch.ScalarType.Float64, device = l.device)
        torch.linalg.solve_triangular (l64, eye, upper = false), $"cholesky ({precision})"
    | LinearAlgebra.Eigen rows -> rows.to_type (torch.ScalarType.Float64, copy = true), $"eigh ({precision}, rank {rows.shape[0]} of {s2.shape[0]})"

/// Junction j's rows b̃ on x, every row, each scaled by 1/√samples (S2 = RᵀR); None when there are
/// at least `limit` of them.
let private inputRows (net: Network) (j: int) (x: torch.Tensor) (limit: int64) : torch.Tensor option =
    use _ = torch.no_grad ()
    let n = x.shape[0]
    let parts = ResizeArray<torch.Tensor> ()
    let mutable count = 0L
    let mutable start = 0L
    while start < n && count < limit do
        use scope = torch.NewDisposeScope ()
        let size = min 256L (n - start)
        let _, records = net.ForwardRecording (x.narrow (0L, start, size))
        let record = records[j]
        use zeros = torch.zeros_like record.BOutput
        use rows = net.Junctions[j].Rows (record, zeros, 0L, null)
        let flat = rows.ATilde.reshape (-1L, rows.ATilde.shape[int (rows.ATilde.dim ()) - 1])
        count <- count + flat.shape[0]
        parts.Add ((flat * sqrt (rows.RowWeight / float n)).DetachFromDisposeScope ())
        start <- start + size
    try
        if count >= limit then None else Some (torch.cat (parts.ToArray (), 0L))
    finally
        for p in parts do p.Dispose ()

/// Junction j's InputCovariance from its S2 on (x, y). When the rows are fewer than D2 (CIFAR-10's
/// 3,073 inputs on 2,048 samples), S2 is singular by construction and W comes from the rows
/// (LinearAlgebra.rowsFactor: a QR and an n×n eigh instead of the D2×D2 eigh; measured at 3,073 on
/// 2,048 rows, one thread: 1.6 s against 2.4 s, the same WᵀW to float32 rounding).
let inputCovariance (net: Network) (j: int) (options: GrowthOptions) (generator: torch.Generator | null)
                    (x: torch.Tensor) (y: torch.Tensor) : InputCovariance =
    let clock = Diagnostics.Stopwatch.StartNew ()
    use stats = (statisticsFor [| j |] options.RowsPerDimension generator net x y 256L)[0]
    let statisticsSeconds = clock.Elapsed.TotalSeconds
    clock.Restart ()
    let d2 = stats.S2.shape[0]
    let cutoff = Bottleneck.effectiveCutoff options.EigenCutoff stats d2
    let w, path =
        match (if x.shape[0] < d2 then inputRows net j x d2 else None) with
        | Some rows ->
            use rows = rows
            use w = LinearAlgebra.rowsFactor rows cutoff
            let precision = if rows.dtype = torch.ScalarType.Float64 then "float64" else "float32"
            w.to_type (torch.ScalarType.Float64, copy = true), $"QR of the rows and eigh of {rows.shape[0]}² ({precision}, rank {w.shape[0]} of {d2})"
        | None -> whiteningOf stats cutoff
    { S2 = stats.S2.clone().DetachFromDisposeScope (); Whitening = w.DetachFromDisposeScope (); Samples = x.shape[0]; Path = path
      StatisticsSeconds = statisticsSeconds; FactorSeconds = clock.Elapsed.TotalSeconds }

/// The whitening alone (see inputCovariance).
let inputWhitening (net: Network) (j: int) (options: GrowthOptions) (generator: torch.Generator | null)
                   (x: torch.Tensor) (y: torch.Tensor) : torch.Tensor =
    let c = inputCovariance net j options generator x y
    c.S2.Dispose ()
    c.Whitening

/// Junctions whose A reads the network's input itself (their S2 depends only on the data).
let readsInput (net: Network) (x: torch.Tensor) : int list =
    use _ = torch.no_grad ()
    use scope = torch.NewDisposeScope ()
    let probe = x.narrow (0L, 0L, min 2L x.shape[0])
    let _, records = net.ForwardRecording probe
    let flat = probe.flatten 1L
    [ for j in 0 .. net.JunctionCount - 1 do
        let a = records[j].AInput.flatten 1L
        // A's input is the network's input itself (a view of it, or its flattening): no weight feeds it.
        if a.shape = flat.shape && (use same = a.eq flat in use all = same.all () in all.item<bool> ()) then yield j ]

/// Junctions with room to grow, in order.
let growable (net: Network) = [ for j in 0 .. net.JunctionCount - 1 do if room net j > 0 then yield j ]

/// The junctions growth step `stepIndex` takes statistics of, in the order they grow: every growable
/// one ("all"; "best" grows only the winner among them), or the one in turn ("roundrobin").
let chosenJunctions (net: Network) (options: GrowthOptions) (stepIndex: int) : int list =
    match growable net with
    | [] -> []
    | js when options.Selection = "roundrobin" -> [ js[stepIndex % js.Length] ]
    | js -> js

/// Groups of batches a junction accumulator keeps (for the significance test; 0: none).
let significanceGroups (options: GrowthOptions) = if options.SignificanceTest = "none" then 0 else options.SignificanceGroups

/// What a junction's growth needs besides its statistics: the input covariance kept for the run
/// (`cached j`, see `inputCovariance`), where its γ search starts (`gammaStart j`, see
/// lineSearchFrom; NaN: cold), the strategy, the options, and the held-out samples of the γ search.
type GrowthContext =
    { Cached: int -> InputCovariance option
      GammaStart: int -> float
      Strategy: IGrowthStrategy
      Options: GrowthOptions
      Generator: torch.Generator | null
      HeldX: torch.Tensor
      HeldY: torch.Tensor }

let private timed (f: unit -> 'T) =
    let clock = Diagnostics.Stopwatch.StartNew ()
    let r = f ()
    r, clock.Elapsed.TotalSeconds

/// The strategy's proposal for junction j from its statistics, checked against the contract
/// (ProposalCheck: a fault stops the run before anything is applied), adapted to the configured new
/// units (NewUnits: at a junction with a normalisation, unit-scale features with a refitted fan-out).
let propose (context: GrowthContext) (net: Network) (stats: Map<int, JunctionStatistics>) (j: int) =
    let whitening : torch.Tensor | null = match context.Cached j with Some c -> c.Whitening | None -> null
    let request = GrowthRequest (stats[j], net.Junctions[j], min context.Options.NeuronsPerStep (room net j), context.Options,
                                 context.Generator, Whitening = whitening)
    let proposal = context.Strategy.Propose request
    try ProposalCheck.check context.Strategy request proposal
    with _ ->
        proposal.Dispose ()
        reraise ()
    match NewUnits.adapt context.Options net.Junctions[j] stats[j] proposal with
    | Some unit ->
        proposal.Dispose ()
        unit
    | None -> proposal

/// Junction j proposed, searched and (γ > 0) applied; the event carries `statisticsSeconds` and the solve time.
let growOne (context: GrowthContext) (net: Network) (stats: Map<int, JunctionStatistics>) (statisticsSeconds: float) (j: int) : GrowthEvent =
    let proposal, solveSeconds = timed (fun () -> propose context net stats j)
    use proposal = proposal
    let e = growJunctionFrom (context.GammaStart j) context.Options.AmplitudeSpread net j proposal stats[j] context.HeldX context.HeldY
    { e with StatisticsSeconds = statisticsSeconds; SolveSeconds = solveSeconds }

/// Selection "best": every junction of `stats` proposes; the best one (bestProposal) is searched and applied.
let growBest (context: GrowthContext) (net: Network) (stats: Map<int, JunctionStatistics>) (statisticsSeconds: float) : GrowthEvent =
    let junctions = stats |> Map.toList |> List.map fst
    let proposals, solveSeconds = timed (fun () -> junctions |> List.map (fun j -> j, propose context net stats j))
    try
        let j, best = bestProposal (fun j k -> addedParameters net j k) proposals
        let e = growJunctionFrom (context.GammaStart j) context.Options.AmplitudeSpread net j best stats[j] context.HeldX context.HeldY
        { e with StatisticsSeconds = statisticsSeconds; SolveSeconds = solveSeconds }
    finally
        proposals |> List.iter (fun (_, p) -> p.Dispose ())

/// Releases a step's statistics.
let release (stats: Map<int, JunctionStatistics>) = stats |> Map.iter (fun _ s -> s.Dispose ())

/// Growth step `stepIndex` (0, 1, …) over the junctions chosen by options.Selection: "all" of them
/// in order, the "best" one, or one in turn ("roundrobin"). Statistics come from a separate pass over
/// (statsX, statsY), γ is searched on the disjoint (context.HeldX, context.HeldY).
let stepIn (context: GrowthContext) (net: Network) (stepIndex: int) (statsX: torch.Tensor) (statsY: torch.Tensor) : GrowthEvent list =
    let chosen = chosenJunctions net context.Options stepIndex
    // Statistics of the junctions `js` as a map from junction to its statistics, and the pass's seconds.
    let pass (js: int list) =
        let groups = significanceGroups context.Options
        // A significance test needs groups of batches: batches small enough that there are `groups` of them.
        let batch = if groups > 0 then max 1L (min 256L (statsX.shape[0] / int64 groups)) else 256L
        let givenS2 j : torch.Tensor | null = match context.Cached j with Some c -> c.S2 | None -> null
        let stats, seconds =
            timed (fun () -> statisticsWith (NewUnits.sampleRowsFor context.Options) givenS2 groups (List.toArray js) context.Options.RowsPerDimension context.Generator net statsX statsY batch)
        Map.ofList (List.zip js (Array.toList stats)), seconds
    if chosen.IsEmpty then []
    elif context.Options.Selection = "best" then
        let stats, seconds = pass chosen
        try [ growBest context net stats seconds ]
        finally release stats
    else
        // Junctions in order. Once a junction has changed the network, the statistics of the
        // junctions still to grow are taken again (only theirs): they must describe the network
        // being grown, or the prediction and the measured decrease are not comparable.
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
                if event.Gamma > 0.0 then
                    stats <- None
                    release current
                yield event ]
        finally
            stats |> Option.iter release

/// A growth step with no whitening computed ahead.
let step (net: Network) (strategy: IGrowthStrategy) (options: GrowthOptions) (generator: torch.Generator | null) (stepIndex: int)
         (statsX: torch.Tensor) (statsY: torch.Tensor) (heldX: torch.Tensor) (heldY: torch.Tensor) : GrowthEvent list =
    let context = { Cached = (fun _ -> None); GammaStart = (fun _ -> nan); Strategy = strategy; Options = options; Generator = generator; HeldX = heldX; HeldY = heldY }
    stepIn context net stepIndex statsX statsY
