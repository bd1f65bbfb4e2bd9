/// Unit new units (NewUnits.fs) on every junction of a CNN with the Fashion-MNIST experiment's
/// geometry (conv 3×3, strides 1, 2, 1, 2, BatchNorm + ReLU, padding 1, then dense via a global
/// average pool, then the head): the first-order prediction against finite differences of the loss
/// in γ, in float64, on even and odd input sizes (stride 2 on an odd map changes the alignment of
/// B's kernel centres), with statistics over one batch and over several.
module TinyGrow.Tests.ConvGeometryTests

open Expecto
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Tests.TestUtil
open TinyGrow.Tests.Fixtures
open TinyGrow.Tests.ConvTests

/// conv(3,s1) → conv(4,s2) → conv(4,s1) → conv(5,s2), each BN + ReLU, padding 1, then GAP → dense(3)
/// → 3 logits, float64, inputs 2×size×size. Junctions: 0..2 conv → conv, 3 conv → GAP → dense,
/// 4 dense → head.
let private network (size: int64) =
    cnn 501L f64 [| 2L; size; size |]
        [ conv 3 3 1 1 1 false true "relu" "none"; conv 4 3 2 1 1 false true "relu" "none"
          conv 4 3 1 1 1 false true "relu" "none"; conv 5 3 2 1 1 false true "relu" "none"; denseSpec 3 ] "gap" 3

/// Options: unit new units, exact pseudo-inverses.
let private unitOptions (useDelta: bool) = GrowthOptions (RelativeThreshold = 0.0, UseDelta = useDelta, EigenCutoff = 1e-10, NewUnits = "unit")

/// Statistics of junction j over (x, y) in batches of `batch`, every row kept in the sums and in the
/// row sample.
let private statisticsKeepingAll (net: Network) (j: int) (x: torch.Tensor) (y: torch.Tensor) (batch: int64) =
    (StatisticsPass.statisticsWith (fun _ -> 1_000_000) (fun _ -> null) 0 [| j |] 0 null net x y batch)[0]

/// The strategy's proposal for junction j, adapted as the engine adapts it (unit new units where they
/// apply; the strategy's own proposal elsewhere, e.g. dense → head).
let private proposalAt (net: Network) (j: int) (stats: JunctionStatistics) (options: GrowthOptions) (k: int) =
    let raw = tiny.Propose (GrowthRequest (stats, net.Junctions[j], k, options, null))
    match NewUnits.adapt options net.Junctions[j] stats raw with
    | Some p -> raw.Dispose (); p
    | None -> raw

/// Mean loss over batches of `batch` (equal sizes), BatchNorm in train mode on each batch's own
/// statistics, running statistics untouched: what the statistics pass differentiated.
let private probeLoss (net: Network) (x: torch.Tensor) (y: torch.Tensor) (batch: int64) =
    use _ = torch.no_grad ()
    let n = x.shape[0]
    let mutable sum = 0.0
    for start in 0L .. batch .. n - 1L do
        let count = min batch (n - start)
        use logits = net.Forward (x.narrow (0L, start, count), ForwardPass.Probe)
        use loss = torch.nn.functional.cross_entropy (logits, y.narrow (0L, start, count), reduction = torch.nn.Reduction.Sum)
        sum <- sum + loss.ToDouble ()
    sum / float n

/// The in-sample first-order decrease per unit γ of a unit proposal on the statistics' row sample
/// (what toUnit predicts without folds): Σ_rows ⟨g, bδᵀ⟩ − ⟨g, hωᵀ⟩, per sample.
let private inSampleSlope (net: Network) (j: int) (stats: JunctionStatistics) (p: NeuronProposal) =
    use scope = torch.NewDisposeScope ()
    let s = match stats.RowSample with NonNull rows -> NewUnits.sampleOf rows | Null -> failwith "no row sample"
    let h = NewUnits.features net.Junctions[j] stats p.FanIn s.BT
    let fromDelta = match p.Delta with null -> 0.0 | d -> (s.G * s.B.mm (d.t ())).sum().ToDouble ()
    let fromNew = -(s.G * h.mm (p.FanOut.t ())).sum().ToDouble ()
    s.Scale * (fromDelta + fromNew)

/// The first-order decrease per unit γ of a unit proposal at a conv → conv or conv → GAP → dense junction,
/// computed from the network itself rather than from statistics rows: the new channels' pre-norm
/// outputs z (A's output with the candidate applied), h = relu((z − μ)/√(v + ε)) with (μ, v) each
/// batch's own moments (`perBatch`, as BatchNorm in train mode computes them) or the statistics'
/// (NewUnits' assumption); B's output changes per unit γ by −δ applied to B's input plus ω on h (a 1×1
/// conv at B's stride: the centre tap of a 3×3 kernel with padding 1), or by u ωᵀ with u = GAP of h;
/// the decrease is −Σ ⟨g, change⟩ / n, g the gradient of the summed loss at B's output per batch.
let private directSlope (net: Network) (j: int) (p: NeuronProposal) (stats: JunctionStatistics) (x: torch.Tensor) (y: torch.Tensor) (batch: int64) (perBatch: bool) =
    let junction = net.Junctions[j]
    let oldWidth = int64 junction.A.OutputWidth
    let k = int64 p.Count
    let n = x.shape[0]
    let globalMean, globalVar = Junctions.newChannelMoments p.FanIn stats
    use globalMean = globalMean
    use globalVar = globalVar
    let mutable total = 0.0
    for start in 0L .. batch .. n - 1L do
        use scope = torch.NewDisposeScope ()
        let count = min batch (n - start)
        let xb, yb = x.narrow (0L, start, count), y.narrow (0L, start, count)
        // g at γ = 0.
        let logits, records = net.ForwardRecording xb
        let loss = torch.nn.functional.cross_entropy (logits, yb, reduction = torch.nn.Reduction.Sum)
        let g = (torch.autograd.grad ([| loss |], [| records[j].BOutput |]))[0]
        use _ = torch.no_grad ()
        let bInput = records[j].BInput.detach ()
        // z of the new channels: the candidate's A output (γ does not scale A's new rows).
        let z =
            let applied = Candidate.apply net j p stats 1e-6
            try
                let _, candidate = net.ForwardRecording xb
                match candidate[j].AOutput with
                | NonNull out -> (out.detach ()).narrow(1L, oldWidth, k).clone ()
                | Null -> failwith "no A output recorded"
            finally Candidate.undo applied
        let dims = [| 0L; 2L; 3L |]
        let mu: torch.Tensor = if perBatch then z.mean (dims) else globalMean
        let sigma2: torch.Tensor = if perBatch then torch.var (z, dims, false) else globalVar
        let h = ((z - mu.view (1L, -1L, 1L, 1L)) / (sigma2.view (1L, -1L, 1L, 1L) + 1e-5).sqrt ()).relu ()
        let change =
            match junction.B with
            | :? TinyGrow.Growth.Conv.ConvLayer as b ->
                let stride = [| int64 b.Stride; int64 b.Stride |]
                let fresh = torch.nn.functional.conv2d (h, p.FanOut.view (-1L, k, 1L, 1L), strides = stride)
                match p.Delta with
                | null -> fresh
                | d ->
                    let w = d.view (d.shape[0], -1L, int64 b.Kernel, int64 b.Kernel)
                    fresh - torch.nn.functional.conv2d (bInput, w, strides = stride, padding = [| int64 b.Padding; int64 b.Padding |])
            | dense ->
                let fresh = h.mean([| 2L; 3L |]).mm (p.FanOut.t ())
                match p.Delta with
                | null -> fresh
                | d -> fresh - (Junctions.withOnes dense.HasBias bInput).mm (d.t ())
        total <- total - (g * change).sum().ToDouble ()
    total / float n

/// The first-order decrease per unit γ of a unit proposal at a dense A without a normalisation (the CNN's dense →
/// head), from the network: the new features h = σ(b̃α'ᵀ) do not depend on γ, B's output changes per unit γ by
/// hω'ᵀ − bδᵀ (b: B's input with its ones column), and the decrease is −Σ⟨g, change⟩ / n.
let private directDenseSlope (net: Network) (j: int) (p: NeuronProposal) (x: torch.Tensor) (y: torch.Tensor) (batch: int64) =
    let junction = net.Junctions[j]
    let n = x.shape[0]
    let mutable total = 0.0
    for start in 0L .. batch .. n - 1L do
        use scope = torch.NewDisposeScope ()
        let count = min batch (n - start)
        let logits, records = net.ForwardRecording (x.narrow (0L, start, count))
        let loss = torch.nn.functional.cross_entropy (logits, y.narrow (0L, start, count), reduction = torch.nn.Reduction.Sum)
        let g = (torch.autograd.grad ([| loss |], [| records[j].BOutput |]))[0]
        use _ = torch.no_grad ()
        let aRows = Junctions.withOnes junction.A.HasBias (records[j].AInput.detach().flatten 1L)
        let h = Activations.apply junction.A.Activation (aRows.mm (p.FanIn.t ()))
        let fresh = h.mm (p.FanOut.t ())
        let change =
            match p.Delta with
            | null -> fresh
            | d -> fresh - (Junctions.withOnes junction.B.HasBias (records[j].BInput.detach ())).mm (d.t ())
        total <- total - (g * change).sum().ToDouble ()
    total / float n

/// (L(0) − L(γ))/γ^p for the proposal applied at γ, p its AmplitudePower.
let private measuredRate (net: Network) (j: int) (p: NeuronProposal) (stats: JunctionStatistics) (x: torch.Tensor) (y: torch.Tensor) (batch: int64) (l0: float) (gamma: float) =
    let applied = Candidate.apply net j p stats gamma
    try (l0 - probeLoss net x y batch) / (gamma ** float p.AmplitudePower) finally Candidate.undo applied

/// γ of the finite differences: (L(0) − L(γ))/γ^p has an O(γ) remainder (and rounding of the loss over γ^p).
let private gammasFor (power: int) = if power = 1 then [ 1e-4; 1e-5 ] else [ 1e-3; 1e-4 ]

/// The FD slope at γ → 0 from rates at γ and γ/10: Richardson's (10·r(γ/10) − r(γ))/9 removes the
/// O(γ) remainder (for the GAP junction it is ~1e-4 relative at γ = 1e-5, the conv ones ~1e-7).
let private extrapolated (rates: float list) = (10.0 * rates[1] - rates[0]) / 9.0

/// One junction's numbers.
type private Row =
    { J: int; Name: string; Unit: bool; K: int
      /// A is dense (no normalisation): unit new units with the linear theory's prediction.
      DenseA: bool
      /// PredictedDecrease 1.0 of the proposal.
      Predicted: float
      /// NewUnits' in-sample slope on the row sample (unit, per-position rows only; else NaN).
      InSample: float
      /// directSlope with the statistics' moments and with each batch's (unit only; else NaN).
      DirectGlobal: float
      DirectPerBatch: float
      /// The strategy's cross term (dense → head: its prediction omits it; else NaN).
      Cross: float
      Slope: float
      /// (L(0) − L(γ))/γ^p at `gammasFor p`.
      Rates: float list }
    /// The FD slope, extrapolated to γ = 0.
    member r.FD = extrapolated r.Rates

/// Runs `f` on one intra-op thread (these kernels are tiny: with libtorch's default on a shared 2-core machine
/// the tests took 50 s instead of 1 s), then restores the count.
let private onOneThread (f: unit -> 'T) =
    let before = torch.get_num_threads ()
    torch.set_num_threads 1
    try f () finally torch.set_num_threads before

let private relative (a: float) (b: float) = abs (a - b) / max (abs b) 1e-300

/// Every junction's numbers for statistics and loss both in batches of `batch` out of n samples.
let private measure (size: int64) (useDelta: bool) (n: int64) (batch: int64) (withGlobal: bool) =
  onOneThread (fun () ->
    use net = network size
    use x = images (600L + size) n 2L size
    use y = labels (700L + size) n 3L
    [ for j in 0 .. net.JunctionCount - 1 do
        use stats = statisticsKeepingAll net j x y batch
        let options = unitOptions useDelta
        use p = proposalAt net j stats options 2
        let l0 = probeLoss net x y batch
        let perPosition = match net.Junctions[j] with :? Junctions.ChainJunction as c -> c.PerPositionRows | _ -> false
        let denseA = net.Junctions[j].A.Kind = "dense"
        let cross =
            if p.FanOutAmplitude then nan
            else
                let update = Bottleneck.existingWeightsUpdate stats options.EigenCutoff
                use delta = update.Delta
                Bottleneck.crossTerm stats delta (directions p)
        yield { J = j; Name = net.Junctions[j].Name; Unit = p.FanOutAmplitude; K = p.Count; DenseA = denseA; Predicted = p.PredictedDecrease 1.0
                InSample = (if p.FanOutAmplitude && perPosition && not denseA then inSampleSlope net j stats p else nan)
                DirectGlobal = (if p.FanOutAmplitude && withGlobal && not denseA then directSlope net j p stats x y batch false else nan)
                DirectPerBatch =
                    if not p.FanOutAmplitude then nan
                    elif denseA then directDenseSlope net j p x y batch
                    else directSlope net j p stats x y batch true
                Cross = cross; Slope = p.ActivationSlope
                Rates = gammasFor p.AmplitudePower |> List.map (measuredRate net j p stats x y batch l0) } ])

/// FD at the smallest γ: O(γ) truncation (≤ 1e-6 relative here) plus rounding of the loss over γ (~1e-11).
let private tolerance = 1e-5

let tests =
    testList "conv junction geometries (finite differences)" [
        test "one batch, every row kept: every junction's prediction is the derivative of the loss in γ (even and odd sizes, with and without δ)" {
            let all = [ for size, useDelta in [ 12L, false; 13L, true ] -> size, useDelta, measure size useDelta 64L 64L false ]
            for size, useDelta, rows in all do
                for r in rows do
                    let at = $"j{r.J} ({r.Name}), size {size}, δ {useDelta}"
                    let fd = r.FD
                    Expect.isGreaterThan r.K 0 $"{at}: neurons proposed"
                    Expect.isGreaterThan fd 0.0 $"{at}: the loss falls"
                    if r.Unit then
                        // The reference computed from the network (1×1 conv at B's stride, GAP) is the FD slope.
                        Expect.isLessThan (relative r.DirectPerBatch fd) tolerance $"{at}: direct slope {r.DirectPerBatch:g9} against FD {fd:g9}"
                        // conv → conv (per-position rows): the prediction is exact. conv → GAP → dense: see the next test.
                        // dense → head: the linear theory's prediction (σ′(0⁺)·α'ᵀb̃ for relu(α'ᵀb̃)), not the derivative.
                        if not (System.Double.IsNaN r.InSample) then
                            Expect.isLessThan (relative r.Predicted fd) tolerance $"{at}: PredictedDecrease 1.0 = {r.Predicted:g9} against FD {fd:g9} (direct {r.DirectPerBatch:g9})"
                    else
                        // dense → head (the strategy's own proposal, p = 2): exact up to the cross term it omits.
                        Expect.isLessThan (relative (r.Predicted - r.Slope * r.Cross) fd) tolerance $"{at}: prediction − σ′(0)·cross = {r.Predicted - r.Slope * r.Cross:g9} against FD {fd:g9}"
        }

        // conv → GAP → dense: the network feeds the dense layer the mean over positions of relu(ẑ). Before its rows
        // carried A's patches at every position, the prediction took the linear fan-out on ẑ of the mean patch and
        // γ(Δ + σ′(0)Σλ²): 2.06× (size 12, no δ) and 1.87× (size 13, δ) the finite difference here; a constant slope
        // E[σ′] = ½ left errors of either sign (the even part of relu is as large as the linear one).
        test "conv → GAP → dense, one batch: the unit prediction is the derivative of the loss in γ" {
            for size, useDelta in [ 12L, false; 13L, true ] do
                let pooled = measure size useDelta 64L 64L false |> List.filter (fun r -> r.Unit && not r.DenseA && System.Double.IsNaN r.InSample)
                Expect.equal (pooled |> List.map (fun r -> r.J)) [ 3 ] $"size {size}: junction 3 is the one into the pooled head, with unit new units"
                for r in pooled do
                    Expect.isGreaterThan r.FD 0.0 $"size {size}, δ {useDelta}: the loss falls"
                    Expect.isLessThan (relative r.Predicted r.FD) tolerance $"j{r.J} ({r.Name}), size {size}, δ {useDelta}: PredictedDecrease 1.0 = {r.Predicted:g9} against FD {r.FD:g9}"
        }

        test "several batches (4 of 16): the rows' in-sample slope is the derivative of the per-batch loss, up to BatchNorm's per-batch moments of the new channels" {
            let all = [ for size, useDelta in [ 13L, false; 12L, true ] -> size, useDelta, measure size useDelta 64L 16L true ]
            for size, useDelta, rows in all do
                for r in rows do
                    let at = $"j{r.J} ({r.Name}), size {size}, δ {useDelta}"
                    let fd = r.FD
                    if r.Unit then
                        // Train-mode BatchNorm normalises the new channels with each batch's moments: with those, exact.
                        Expect.isLessThan (relative r.DirectPerBatch fd) tolerance $"{at}: direct slope (batch moments) {r.DirectPerBatch:g9} against FD {fd:g9}"
                        if not (System.Double.IsNaN r.InSample) then
                            // NewUnits normalises with the statistics' moments (over all batches): the rows are then exact...
                            Expect.isLessThan (relative r.InSample r.DirectGlobal) tolerance $"{at}: in-sample slope of the rows {r.InSample:g9} against the direct slope with the same moments {r.DirectGlobal:g9}"
                            // ...and the batches' deviation from them is a small change of the slope.
                            Expect.isLessThan (relative r.InSample fd) 0.02 $"{at}: in-sample slope {r.InSample:g9} against FD {fd:g9}"
                    else
                        Expect.isLessThan (relative (r.Predicted - r.Slope * r.Cross) fd) tolerance $"{at}: prediction − σ′(0)·cross = {r.Predicted - r.Slope * r.Cross:g9} against FD {fd:g9}"
        }
    ]
