/// The strategies as settings of one proposal function (plugins/Growth.Strategies/Proposal.fs):
/// `tiny`, `gradmax` and `random` propose finite neurons of the contract's shapes for dense and conv
/// junctions; gradmax's fan-in is zero and its fan-out spans the top right singular vectors of M2
/// (against torch.linalg.svd), applied at γ = 1 with the function unchanged; random never predicts a
/// first-order increase (over seeds) and its prediction matches finite differences for a linear σ;
/// Growth.step with each strategy grows a small synthetic problem and stays finite.
module TinyGrow.Tests.StrategyTests

open Expecto
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Growth.Strategies
open TinyGrow.Tests.TestUtil
open TinyGrow.Tests.Fixtures

let gradmax = GradMaxStrategy () :> IGrowthStrategy
let random = RandomStrategy () :> IGrowthStrategy
let strategies = [ tiny; gradmax; random ]

let private proposeWith (strategy: IGrowthStrategy) (net: Network) (j: int) (stats: JunctionStatistics) (maxNeurons: int) (opts: GrowthOptions) (g: torch.Generator | null) =
    strategy.Propose (GrowthRequest (stats, net.Junctions[j], maxNeurons, opts, g))

/// Shapes, finiteness and a finite forward with the proposal applied at γ = 1 (then undone).
let private checkProposal (name: string) (net: Network) (j: int) (stats: JunctionStatistics) (p: NeuronProposal) (maxNeurons: int) (x: torch.Tensor) =
    let d2, out = stats.S2.shape[0], stats.M.shape[1]
    let k = int64 p.Count
    Expect.isGreaterThan p.Count 0 $"{name}: junction {j} proposes neurons"
    Expect.isLessThanOrEqual p.Count maxNeurons $"{name}: at most MaxNeurons"
    Expect.equal p.FanIn.shape [| k; d2 |] $"{name}: FanIn K×D2"
    Expect.equal p.FanOut.shape [| out; k |] $"{name}: FanOut out×K"
    Expect.equal p.FanIn.dtype f64 $"{name}: float64"
    Expect.isTrue (isFinite p.FanIn && isFinite p.FanOut) $"{name}: finite weights"
    Expect.isTrue (p.NeuronScores |> Array.forall System.Double.IsFinite) $"{name}: finite scores"
    Expect.isTrue (System.Double.IsFinite (p.PredictedDecrease 1.0)) $"{name}: finite prediction"
    let applied = Candidate.apply net j p stats 1.0
    try
        use _ = torch.no_grad ()
        use logits = net.Forward x
        Expect.isTrue (isFinite logits) $"{name}: finite forward with the proposal applied"
    finally Candidate.undo applied

/// A CNN (conv → BN → relu → conv → BN → relu → GAP → dense → logits), float64.
let private smallCnn () =
    ConvTests.cnn 91L f64 [| 2L; 8L; 8L |]
        [ ConvTests.conv 2 3 1 1 1 false true "relu" "none"; ConvTests.conv 3 3 1 1 1 false true "relu" "none"; ConvTests.denseSpec 2 ]
        "gap" 4

/// Orthogonal projector on the columns of `a` (full column rank).
let private projector (a: torch.Tensor) =
    let struct (q, r) = torch.linalg.qr a
    use r = r
    use q = q
    q.mm (q.t ())

let tests =
    testList "strategies" [
        test "tiny, gradmax, random: finite neurons of the contract's shapes for every junction of an MLP" {
            use net = mlp 601L f64 6 [ 3; 2 ] "tanh" 4
            use x = randn 602L 120L 6L
            use y = labels 603L 120L 4L
            let stats = StatisticsPass.statisticsPass net x y 40L
            try
                for s in strategies do
                    for j in 0 .. net.JunctionCount - 1 do
                        use g = new torch.Generator (604UL)
                        use p = proposeWith s net j stats[j] 3 (options 0.0 true) g
                        checkProposal s.Name net j stats[j] p 3 x
            finally stats |> Array.iter (fun s -> s.Dispose ())
        }

        test "tiny, gradmax, random: finite neurons of the contract's shapes for conv junctions (conv→conv, conv→GAP→dense, dense→logits)" {
            use net = smallCnn ()
            use x = ConvTests.images 611L 10L 2L 8L
            use y = labels 612L 10L 4L
            Expect.equal net.JunctionCount 3 "three junctions"
            let stats = StatisticsPass.statisticsPass net x y 5L
            try
                for s in strategies do
                    for j in 0 .. net.JunctionCount - 1 do
                        use g = new torch.Generator (613UL)
                        use p = proposeWith s net j stats[j] 2 (options 0.0 true) g
                        checkProposal s.Name net j stats[j] p 2 x
            finally stats |> Array.iter (fun s -> s.Dispose ())
        }

        test "gradmax: zero fan-in, fan-out along the top right singular vectors of M2 (torch.linalg.svd, float64), scaled to B's mean fan-out norm" {
            use net = mlp 621L f64 7 [ 4; 5 ] "tanh" 6
            use x = randn 622L 150L 7L
            use y = labels 623L 150L 6L
            let stats = StatisticsPass.statisticsPass net x y 50L
            try
                for j in 0 .. net.JunctionCount - 1 do
                    use p = proposeWith gradmax net j stats[j] 3 (options 0.0 true) null
                    Expect.equal p.Count 3 $"junction {j}: three neurons (M2 has rank ≥ 3)"
                    Expect.equal (maxAbs p.FanIn) 0.0 "fan-in exactly zero"
                    Expect.isNull p.Delta "no δ"
                    Expect.equal p.DeltaDecrease 0.0 "no Δ"
                    Expect.equal p.Amplitude (System.Nullable 1.0) "applied at γ = 1 without a search"
                    let struct (_, sv, vh) = torch.linalg.svd (stats[j].M2, fullMatrices = false)
                    use sv = sv
                    use vh = vh
                    use vk = vh.narrow(0L, 0L, 3L).t ()                       // out×3
                    use expected = projector vk
                    use actual = projector p.FanOut
                    Expect.isLessThan (maxAbsDiff actual expected) 1e-10 "span = top-3 right singular vectors"
                    // Column by column: ω_k = ±c·v_k (distinct singular values of random data).
                    use norms = p.FanOut.norm (0)
                    let c = Proposal.meanFanOutNorm net.Junctions[j].B
                    let w = net.Junctions[j].B.Parameters[0] :> torch.Tensor
                    use wc = w.norm (0)
                    Expect.floatClose Accuracy.high c (wc.mean().ToDouble ()) "c = mean column norm of W_B"
                    for k in 0L .. 2L do
                        Expect.floatClose Accuracy.high (norms[k].ToDouble ()) c $"|ω_{k}| = c"
                        use dot = (p.FanOut.select (1L, k) * vk.select (1L, k)).sum ()
                        Expect.floatClose Accuracy.high (abs (dot.ToDouble ())) c $"ω_{k} = ±c·v_{k}"
                    // Score: ‖∂L/∂α_k‖²/σ′(0), ∂L/∂α_k = σ′(0)·M2·ω_k = σ′(0)·c·s_k·(±u_k).
                    let s = (use c = sv.cpu () in c.data<float>().ToArray ())
                    for k in 0 .. 2 do
                        Expect.floatClose Accuracy.high p.NeuronScores[k] (p.ActivationSlope * c * c * s[k] * s[k]) $"score {k}"
            finally stats |> Array.iter (fun s -> s.Dispose ())
        }

        test "gradmax: applying the proposal leaves the loss unchanged at any γ, and growJunction adds it without a search" {
            use net = mlp 631L f64 6 [ 2; 2 ] "tanh" 4
            use x = randn 632L 100L 6L
            use y = labels 633L 100L 4L
            use stats = (StatisticsPass.statisticsPass net x y 50L)[0]
            use p = proposeWith gradmax net 0 stats 2 (options 0.0 true) null
            let l0 = Training.meanLoss net x y
            for gamma in [ 0.5; 1.0; 8.0 ] do
                Expect.floatClose Accuracy.veryHigh (lossWith net 0 p stats x y gamma) l0 $"loss unchanged at γ = {gamma}"
            let before = net.Widths[0]
            let event = GammaSearch.growJunction net 0 p stats x y
            Expect.equal event.Gamma 1.0 "γ = 1"
            Expect.equal event.Added p.Count "every neuron added"
            Expect.equal net.Widths[0] (before + p.Count) "A grew"
            Expect.isLessThan (abs event.MeasuredDecrease) 1e-12 "measured decrease 0: the function is unchanged"
            // Training moves the new fan-ins: their gradient is the one GradMax maximised.
            let ps = net.Junctions[0].A.Parameters |> Seq.map (fun p -> p :> torch.Tensor) |> Seq.toArray // weight, bias
            use logits = net.Forward x
            use loss = torch.nn.functional.cross_entropy (logits, y)
            let grads = torch.autograd.grad ([| loss |], ps)
            use wRows = grads[0].narrow (0L, int64 before, int64 p.Count)
            use bRows = grads[1].narrow (0L, int64 before, int64 p.Count)
            let squared = (wRows * wRows).sum().ToDouble () + (bRows * bRows).sum().ToDouble ()
            Expect.floatClose { absolute = 1e-12; relative = 1e-6 } squared (p.PredictedDecrease 1.0)
                "Σ‖∂L/∂α_k‖² over the new rows of A (weights and bias) = PredictedDecrease(1)"
        }

        test "random: the first-order decrease is ≥ 0 for every neuron, over 25 seeds, dense and conv" {
            use net = mlp 641L f64 6 [ 3; 2 ] "relu" 4
            use x = randn 642L 120L 6L
            use y = labels 643L 120L 4L
            use cnnNet = smallCnn ()
            use cx = ConvTests.images 644L 10L 2L 8L
            use cy = labels 645L 10L 4L
            let stats = StatisticsPass.statisticsPass net x y 40L
            let cnnStats = StatisticsPass.statisticsPass cnnNet cx cy 5L
            try
                for seed in 1UL .. 25UL do
                    for (n: Network), (st: JunctionStatistics[]) in [ net, stats; cnnNet, cnnStats ] do
                        for j in 0 .. n.JunctionCount - 1 do
                            use g = new torch.Generator (seed)
                            use p = proposeWith random n j st[j] 4 (options 0.0 true) g
                            Expect.isGreaterThan p.Count 0 "proposes neurons"
                            for s in p.NeuronScores do
                                Expect.isGreaterThanOrEqual s 0.0 $"seed {seed}, junction {j}: neuron share ≥ 0"
                            Expect.isGreaterThanOrEqual (p.PredictedDecrease 1.0) 0.0 "total ≥ 0"
                            // The share is α_kᵀNω_k with N = −M2 (no projection, no δ).
                            use shares = (p.FanIn.mm (st[j].M2.neg ()) * p.FanOut.t ()).sum (1L)
                            let expected = (use c = shares.cpu () in c.data<float>().ToArray ())
                            for k in 0 .. p.Count - 1 do
                                Expect.floatClose Accuracy.high p.NeuronScores[k] expected[k] "score = α_kᵀNω_k"
                            Expect.isNull p.Delta "no δ"
                // The fan-in is drawn like A's initialisation: uniform within ±1/√fan_in.
                use g = new torch.Generator (7UL)
                use p = proposeWith random net 0 stats[0] 4 (options 0.0 true) g
                Expect.isLessThanOrEqual (maxAbs p.FanIn) (1.0 / sqrt 6.0) "|α| ≤ 1/√fan_in"
                Expect.isGreaterThan (maxAbs p.FanIn) (0.5 / sqrt 6.0) "not degenerate"
            finally
                stats |> Array.iter (fun s -> s.Dispose ())
                cnnStats |> Array.iter (fun s -> s.Dispose ())
        }

        test "random: for a linear σ the predicted decrease matches finite differences (L(0) − L(ε))/ε²" {
            use net = mlp 651L f64 5 [ 3 ] "identity" 4
            use x = randn 652L 200L 5L
            use y = labels 653L 200L 4L
            use stats = (StatisticsPass.statisticsPass net x y 200L)[0]
            use g = new torch.Generator (654UL)
            use p = proposeWith random net 0 stats 3 (options 0.0 true) g
            let l0 = Training.meanLoss net x y
            let eps = 1e-3
            let measured = (l0 - lossWith net 0 p stats x y eps) / (eps * eps)
            Expect.isGreaterThan (p.PredictedDecrease 1.0) 0.0 "a positive prediction"
            Expect.floatClose { absolute = 1e-9; relative = 1e-3 } measured (p.PredictedDecrease 1.0) "first order exact"
        }

        test "Growth.step with tiny, gradmax and random grows a small synthetic problem and stays finite" {
            for s in strategies do
                use net = mlp 661L torch.ScalarType.Float32 8 [ 1; 1 ] "tanh" 3
                use x64 = randn 662L 600L 8L
                use x = x64.to_type torch.ScalarType.Float32
                use y = labels 663L 600L 3L
                let opt = Sgd ((fun () -> net.Parameters), 0.9, 0.0) :> IOptimizer
                use g = new torch.Generator (664UL)
                let opts = GrowthOptions (Strategy = s.Name, NeuronsPerStep = 3)
                let mutable grown = 0
                for stepIndex in 0 .. 2 do
                    for start in 0L .. 100L .. 500L do
                        Training.trainStep net opt 0.05 (x.narrow (0L, start, 100L)) (y.narrow (0L, start, 100L)) |> ignore
                    let events = Growth.step net s opts g stepIndex (x.narrow (0L, 0L, 300L)) (y.narrow (0L, 0L, 300L)) (x.narrow (0L, 300L, 300L)) (y.narrow (0L, 300L, 300L))
                    opt.AfterGrowth ()
                    for e in events do
                        Expect.isTrue (System.Double.IsFinite e.PredictedDecrease && System.Double.IsFinite e.MeasuredDecrease) $"{s.Name}: finite event"
                        grown <- grown + e.Added
                Expect.isGreaterThan grown 0 $"{s.Name}: neurons were added"
                Expect.equal (Array.sum net.Widths) (2 + grown) $"{s.Name}: widths grew by what the events say"
                let loss = Training.trainStep net opt 0.05 x y
                Expect.isTrue (System.Double.IsFinite loss) $"{s.Name}: trains after growth, finite loss"
                Expect.isTrue (net.Parameters |> Seq.forall (fun p -> isFinite (p :> torch.Tensor))) $"{s.Name}: finite parameters"
        }
    ]
