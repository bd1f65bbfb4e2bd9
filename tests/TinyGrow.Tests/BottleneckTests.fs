/// The closed forms of Bottleneck and LinearAlgebra (DESIGN §4): exact reconstruction by the new
/// neurons, zero bottleneck when g is reachable, robustness to rank deficiency, relative cutoffs.
module TinyGrow.Tests.BottleneckTests

open Expecto
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Growth.Strategies
open TinyGrow.Tests.TestUtil
open TinyGrow.Tests.Fixtures

let private accumulate (rows: JunctionRows) =
    let acc = Statistics.JunctionAccumulator ()
    acc.Add rows
    acc.Finish ()

/// A PSD matrix V diag(λ) Vᵀ with a random orthogonal V.
let private psdWith (seed: int64) (lambdas: float[]) =
    let d = int64 lambdas.Length
    use q0 = randn seed d d
    let struct (q, r) = torch.linalg.qr q0
    use q = q
    use r = r
    use l = torch.tensor (lambdas, dtype = f64)
    use ql = q * l.unsqueeze 0L
    ql.mm (q.t ()), q.clone ()

/// Dense layers only to carry the activation into a GrowthRequest built from hand rows.
let private layersFor (d2: int) (d1: int) (out: int) =
    use g = new torch.Generator (7UL)
    dense.Create (spec (d1 - 1) 64 "tanh" true, d2 - 1, torch.CPU, f64, g),
    dense.Create (spec out out "identity" true, d1 - 1, torch.CPU, f64, g)

let private reachableC () = randn 52L 3L 5L

/// Statistics of 60 rows where g = C b exactly (b ∈ R^5, b̃ ∈ R^4, 3 outputs).
let private reachable () =
    let n = 60L
    use b = randn 51L n 5L
    use c = reachableC ()
    use g = b.mm (c.t ())
    use rows = new JunctionRows (b.clone (), randn 53L n 4L, g.clone (), n)
    accumulate rows

/// Rows with an exactly collinear input column (x3 = x1 + x2), as float64 and as float32.
let private collinearRows (dtype: torch.ScalarType) =
    let n = 1024L
    use x = randn 61L n 2L
    use x3 = x.sum (1L, keepdim = true)
    use ones = torch.ones ([| n; 1L |], dtype = f64)
    use b = torch.cat ([| x; x3; ones |], 1L)
    use c = randn 62L 2L 4L
    use noise = randn 63L n 2L
    use g = b.mm (c.t ()) + noise * 0.1
    new JunctionRows (b.to_type dtype, b.to_type dtype, g.to_type dtype, n)

let tests =
    testList "bottleneck" [
        test "float32 rows: the cutoff rises to the rounding level, so δ matches the float64 one" {
            use r64 = collinearRows f64
            use r32 = collinearRows torch.ScalarType.Float32
            use s64 = accumulate r64
            use s32 = accumulate r32
            // The collinear direction's eigenvalue is 0 exactly; formed in float32 it is rounding
            // (measured 1.1e-7·λmax), far above the configured 1e-10. Kept, S⁺ would amplify it by
            // ~1e7 and δ would be dominated by noise (max error 2.55 against |δ| 1.24). The
            // rounding level (D + √rows)·u = (4 + 32)·6e-8 = 2.1e-6 drops it with a 20× margin.
            Expect.isGreaterThan (Bottleneck.effectiveCutoff 1e-10 s32 4L) 1e-6 "float32: cutoff at rounding level"
            Expect.equal (Bottleneck.effectiveCutoff 1e-10 s64 4L) 1e-10 "float64: the configured cutoff"
            let u64 = Bottleneck.existingWeightsUpdate s64 1e-10
            let u32 = Bottleneck.existingWeightsUpdate s32 1e-10
            use d64 = u64.Delta
            use d32 = u32.Delta
            // float32 inputs carry ~1e-7 relative error; the min-norm solution is well conditioned
            // on the kept directions: 1e-4 relative leaves room for that and none for a noise blow-up.
            Expect.isTrue (allClose d32 d64 1e-4) $"δ(float32) ≈ δ(float64): max diff {maxAbsDiff d32 d64}"
        }

        test "projectedN returns a live tensor equal to P δᵀ − M2" {
            use rows = new JunctionRows (randn 41L 30L 4L, randn 42L 30L 5L, randn 43L 30L 3L, 30L)
            use stats = accumulate rows
            use delta = randn 44L 3L 4L
            use expected = stats.P.mm (delta.t ()) - stats.M2
            use n = Bottleneck.projectedN stats delta
            // Regression: `use pdt` inside projectedN disposed the tensor it returned (pdt.sub_ is pdt).
            Expect.isTrue (n.IsInvalid |> not) "N still has its native handle after projectedN returns"
            // Same two float64 operations: identical up to rounding.
            Expect.isTrue (allClose n expected 1e-14) "N = P δᵀ − M2"
        }

        test "zero bottleneck: g = C b gives δ = C, bottleneck ≈ 0 and N ≈ 0" {
            use stats = reachable ()
            let update = Bottleneck.existingWeightsUpdate stats 1e-10
            use delta = update.Delta
            use c = reachableC ()
            // δ recovers C to the accuracy of a well-conditioned 60×5 solve (~1e-14 relative).
            Expect.isTrue (allClose delta c 1e-10) "δ = C"
            // tr E − Δ cancels two O(tr E) numbers: float64 leaves ~1e-15·tr E; 1e-10 is far below
            // any real bottleneck (a 1 % residual would be 1e-2).
            Expect.isLessThan (abs update.Bottleneck) (1e-10 * stats.TraceE) "bottleneck ≈ 0 relative to tr E"
            use nProj = Bottleneck.projectedN stats delta
            // N = P δᵀ − M2 cancels two O(|M2|) matrices: same float64 argument as above.
            Expect.isLessThan (maxAbs nProj) (1e-10 * maxAbs stats.M2) "N ≈ 0 relative to M2"
        }

        test "zero bottleneck: tiny proposes no neuron for a rounding-noise N (default options)" {
            use stats = reachable ()
            let a, bl = layersFor 4 5 3
            use a = a
            use bl = bl
            use proposal = tiny.Propose (GrowthRequest (stats, junctionOf a bl, 8, GrowthOptions (), null))
            // λ_k/λ_1 ≥ threshold can never reject λ_1 itself: with N at rounding level (λ ~ 1e-15,
            // tr E ~ 7) every noise direction passes. Expected: nothing worth adding.
            Expect.equal proposal.Count 0 $"no neuron for a rounding-noise N (λ = %A{Array.map sqrt proposal.NeuronScores}, tr E = {stats.TraceE})"
        }

        test "full set of directions reconstructs Y exactly: X αᵀ ωᵀ = Y when Y = X C" {
            let n, d2, out = 40L, 6L, 4L
            use x = randn 61L n d2
            use c = randn 62L d2 out
            use y = x.mm c
            use s2 = x.t().mm x
            use nMat = x.t().mm y
            let d = Bottleneck.neuronDirections s2 nMat 1e-10 true
            use fanIn = d.FanIn
            use fanOut = d.FanOut
            Expect.equal d.Lambdas.Length (int out) "min(D2, out) directions"
            Expect.isTrue (d.Lambdas |> Array.pairwise |> Array.forall (fun (p, q) -> p >= q)) "λ descending"
            use recon = x.mm(fanIn.t ()).mm (fanOut.t ())
            // X is 40×6 Gaussian (condition ~3): eigh, whitening and SVD in float64 lose ~1e-14
            // relative; 1e-11 leaves a thousandfold margin and still fails on any formula error.
            Expect.isTrue (allClose recon y 1e-11) $"X αᵀ ωᵀ = Y (max diff {maxAbsDiff recon y})"
        }

        test "rank-deficient statistics from a network (5 samples, 20 inputs, a duplicated input) stay finite" {
            use net = mlp 71L f64 20 [ 8 ] "tanh" 3
            use x0 = randn 72L 5L 20L
            // Column 1 := column 0: a duplicated feature on top of n = 5 < D2 = 21.
            x0.narrow(1L, 1L, 1L).copy_ (x0.narrow (1L, 0L, 1L)) |> ignore
            use y = labels 73L 5L 3L
            use stats = (StatisticsPass.statisticsPass net x0 y 5L)[0]
            use proposal = propose net 0 stats 8 (options 0.0 true)
            let update = Bottleneck.existingWeightsUpdate stats 1e-10
            use delta = update.Delta
            Expect.isTrue (isFinite delta) "δ finite"
            Expect.isTrue (isFinite proposal.FanIn) "α finite"
            Expect.isTrue (isFinite proposal.FanOut) "ω finite"
            Expect.isTrue (proposal.NeuronScores |> Array.forall System.Double.IsFinite) "λ finite"
            Expect.isTrue (System.Double.IsFinite update.Decrease && update.Decrease >= 0.0) $"Δ ≥ 0 (got {update.Decrease})"
            // n = 5 < D1 = 9: g is fitted exactly, so the true bottleneck is 0 and only rounding
            // of tr E − Δ remains (~1e-15·tr E, amplified by at most the 1e10 condition the
            // relative cutoff allows in S⁺: ~1e-12·tr E for these sizes); −1e-11·tr E bounds that.
            Expect.isGreaterThanOrEqual update.Bottleneck (-1e-11 * stats.TraceE) $"bottleneck ≥ −1e-11·tr E (got {update.Bottleneck})"
        }

        test "duplicated columns in b and b̃ (exactly singular S, S2): finite, and δ is a least-squares solution" {
            let n = 50L
            use b0 = randn 81L n 4L
            use bt0 = randn 82L n 5L
            // Duplicate a column of each: S and S2 are exactly singular.
            use b = torch.cat ([| b0; b0.narrow (1L, 0L, 1L) |], 1L)
            use bt = torch.cat ([| bt0; bt0.narrow (1L, 2L, 1L) |], 1L)
            use g = randn 83L n 3L
            use rows = new JunctionRows (b.clone (), bt.clone (), g.clone (), n)
            use stats = accumulate rows
            let update = Bottleneck.existingWeightsUpdate stats 1e-10
            use delta = update.Delta
            Expect.isTrue (isFinite delta) "δ finite"
            let fit = b.mm (delta.t ())
            let residual = (g - fit).square().sum().item<float> () / float n
            let struct (sol, res, rank, sv) = torch.linalg.lstsq (b0, g)
            use sol = sol
            use _r = res
            use _k = rank
            use _s = sv
            let best = (g - b0.mm sol).square().sum().item<float> () / float n
            // Both are residuals of well-posed fits on the same 4-dimensional column space: ~1e-14 relative.
            Expect.floatClose { absolute = 0.0; relative = 1e-10 } residual best "δ reaches the least-squares residual"
            Expect.floatClose { absolute = 0.0; relative = 1e-10 } update.Bottleneck best "bottleneck = least-squares residual"
            let a, bl = layersFor 6 5 3
            use a = a
            use bl = bl
            use proposal = tiny.Propose (GrowthRequest (stats, junctionOf a bl, 8, options 0.0 true, null))
            Expect.isTrue (isFinite proposal.FanIn && isFinite proposal.FanOut) "α, ω finite"
            Expect.isTrue (proposal.NeuronScores |> Array.forall System.Double.IsFinite) "λ finite"
            Expect.isGreaterThanOrEqual update.Decrease 0.0 "Δ ≥ 0"
        }

        test "pinvPsd equals torch.linalg.pinv on a random PSD matrix" {
            use q = randn 91L 6L 9L
            use a = q.mm (q.t ())
            use mine = LinearAlgebra.pinvPsd a 1e-10
            use reference = torch.linalg.pinv a
            // A = QQᵀ with a 6×9 Gaussian Q has condition ~1e2: both pseudo-inverses are accurate to ~1e-13.
            Expect.isTrue (allClose mine reference 1e-9) $"pinvPsd = pinv (max diff {maxAbsDiff mine reference})"
        }

        test "pinvPsd drops eigenvalues relative to λmax, at any scale" {
            let a, v = psdWith 92L [| 3.0; 1.0; 0.5; 1e-13; 0.0; 0.0 |]
            use a = a
            use v = v
            // Expected: 1e-13 < 1e-10·3 is dropped, the rest inverted.
            use inv = torch.tensor ([| 1.0 / 3.0; 1.0; 2.0; 0.0; 0.0; 0.0 |], dtype = f64)
            use vi = v * inv.unsqueeze 0L
            use expected = vi.mm (v.t ())
            use mine = LinearAlgebra.pinvPsd a 1e-10
            // eigh of a 6×6 with eigenvalues ≥ 0.5 kept: accurate to ~1e-15; the dropped 1e-13
            // eigenvalue would contribute 1e13 if kept, so 1e-9 cannot hide a wrong cutoff.
            Expect.isTrue (allClose mine expected 1e-9) "tiny eigenvalue dropped, others inverted"
            use tinyA = a * 1e-12
            use tinyInv = LinearAlgebra.pinvPsd tinyA 1e-10
            use rescaled = tinyInv * 1e-12
            // Scaling by 1e-12 is exact in binary up to one rounding per entry: same 1e-9 argument.
            Expect.isTrue (allClose rescaled mine 1e-9) "pinv(1e-12·A) = 1e12·pinv(A): the cutoff is relative"
            use halfInv = LinearAlgebra.invSqrtPsd a 1e-10
            use squared = halfInv.mm halfInv
            Expect.isTrue (allClose squared expected 1e-9) "invSqrtPsd² = pinvPsd"
        }

        test "SelectCount honours the relative threshold and the cap, at any scale" {
            let lambdas = [| 10.0; 5.0; 1.0; 0.4; 0.0 |]
            for scale in [ 1.0; 1e-9; 1e9 ] do
                let l = lambdas |> Array.map ((*) scale)
                Expect.equal (TinyStrategy.SelectCount l 0.05 10) 3 $"λ ≥ 0.05·λ1 keeps 10, 5, 1 (scale {scale})"
                Expect.equal (TinyStrategy.SelectCount l 0.05 2) 2 "capped at 2"
                Expect.equal (TinyStrategy.SelectCount l 0.0 10) 4 "threshold 0 keeps every λ > 0"
                Expect.equal (TinyStrategy.SelectCount l 0.5 10) 2 "λ ≥ 0.5·λ1 keeps 10 and 5 (equality included)"
                Expect.equal (TinyStrategy.SelectCount l 1.0 10) 1 "threshold 1 keeps λ1 only"
                Expect.equal (TinyStrategy.SelectCount l 0.05 0) 0 "no budget, no neuron"
            Expect.equal (TinyStrategy.SelectCount [||] 0.05 10) 0 "no direction"
            Expect.equal (TinyStrategy.SelectCount [| 0.0; 0.0 |] 0.05 10) 0 "zero λ1"
        }
    ]
