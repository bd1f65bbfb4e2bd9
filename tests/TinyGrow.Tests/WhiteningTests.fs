/// The cheap whitening (issue 10): any W with WᵀW = S2⁺ gives the eigh path's λ_k, α_kω_kᵀ, δ and
/// Δ. Cholesky is taken only where it is exact (S2 well conditioned at the cutoff); elsewhere the
/// eigh fallback must give the same proposals: same λ, same predicted decrease, same function added.
module TinyGrow.Tests.WhiteningTests

open Expecto
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Core.LinearAlgebra
open TinyGrow.Tests.TestUtil
open TinyGrow.Tests.Fixtures

let private accumulate (rows: JunctionRows) =
    let acc = Statistics.JunctionAccumulator ()
    acc.Add rows
    acc.Finish ()

let private isCholesky (f: PsdFactor) = match f with Cholesky _ -> true | Eigen _ -> false

let private pathOf (s2: torch.Tensor) (cutoff: float) =
    use f = psdFactor s2 cutoff
    if isCholesky f then "cholesky" else "eigh"

/// Rows of a junction with n samples: b (d1 inputs + bias), b̃ (d2 inputs + bias), g (out). The
/// inputs are uncentred (mean 0.5, like pixels) and mixed, so S and S2 are not near-diagonal.
let private junction (seed: int64) (n: int64) (d1: int64) (d2: int64) (out: int64) =
    let withBias (x: torch.Tensor) =
        use ones = torch.ones ([| n; 1L |], dtype = f64)
        torch.cat ([| x; ones |], 1L)
    use x2 = randn seed n d2
    use mix = randn (seed + 1L) d2 d2
    use bt0 = x2.mm (torch.eye (d2, dtype = f64) + mix * 0.2) + 0.5
    use bt = withBias bt0
    use wa = randn (seed + 2L) d2 d1
    use b0 = (bt0.mm wa * 0.3).tanh ()
    use b = withBias b0
    use g = randn (seed + 3L) n out
    b.clone (), bt.clone (), g.clone ()

let private statsOf (b: torch.Tensor) (bt: torch.Tensor) (g: torch.Tensor) =
    use rows = new JunctionRows (b.clone (), bt.clone (), g.clone (), b.shape[0])
    accumulate rows

/// Every proposal quantity by both paths, for the same statistics.
type private Both =
    { New: Bottleneck.NeuronDirections
      Old: Bottleneck.NeuronDirections
      NewUpdate: Bottleneck.ExistingWeightsUpdate
      OldUpdate: Bottleneck.ExistingWeightsUpdate }
    member x.Dispose () =
        for t in [ x.New.FanIn; x.New.FanOut; x.Old.FanIn; x.Old.FanOut; x.NewUpdate.Delta; x.OldUpdate.Delta ] do t.Dispose ()

let private both (stats: JunctionStatistics) (cutoff: float) =
    let newUpdate = Bottleneck.existingWeightsUpdate stats cutoff
    let oldUpdate = Bottleneck.existingWeightsUpdateEigh stats cutoff
    use nNew = Bottleneck.projectedN stats newUpdate.Delta
    use nOld = Bottleneck.projectedN stats oldUpdate.Delta
    let c2 = Bottleneck.effectiveCutoff cutoff stats stats.S2.shape[0]
    { New = Bottleneck.neuronDirections stats.S2 nNew c2 true
      Old = Bottleneck.neuronDirectionsEigh stats.S2 nOld c2
      NewUpdate = newUpdate
      OldUpdate = oldUpdate }

/// α_k ω_kᵀ for every k (K×D2×out): free of the sign ambiguity of α_k and ω_k separately.
let private products (d: Bottleneck.NeuronDirections) = torch.einsum ("kd,ok->kdo", d.FanIn, d.FanOut)

/// Σ_k (b̃ α_k) ω_kᵀ on the data: what the new neurons add to B's pre-activation (linear σ).
let private added (bt: torch.Tensor) (d: Bottleneck.NeuronDirections) = bt.mm(d.FanIn.t ()).mm (d.FanOut.t ())

let private relClose (a: float) (b: float) (tol: float) = abs (a - b) <= tol * max (abs a) (abs b)

let tests =
    testList "whitening" [
        test "well-conditioned S2 (float64): Cholesky is taken and λ, α_kω_kᵀ, δ, Δ equal the eigh path to 1e-10" {
            let b, bt, g = junction 101L 2000L 12L 60L 6L
            use b = b
            use bt = bt
            use g = g
            use stats = statsOf b bt g
            let c2 = Bottleneck.effectiveCutoff 1e-10 stats stats.S2.shape[0]
            Expect.equal (pathOf stats.S2 c2) "cholesky" "S2 well conditioned: Cholesky factor"
            Expect.equal (pathOf stats.S (Bottleneck.effectiveCutoff 1e-10 stats stats.S.shape[0])) "cholesky" "S well conditioned: Cholesky solve"
            // Relative thresholds: the same statistics at another scale take the same path.
            use tinyS2 = stats.S2 * 1e-12
            Expect.equal (pathOf tinyS2 c2) "cholesky" "1e-12·S2 takes the same path"
            let r = both stats 1e-10
            try
                Expect.equal r.New.Lambdas.Length r.Old.Lambdas.Length "same number of directions (min(D2, out))"
                Expect.equal r.New.Lambdas.Length 6 "out = 6 directions"
                // 2000 rows of 61 mixed, uncentred features: S2 has condition ~1e2; both paths lose
                // ~κ·1e-16 relative. 1e-10 leaves a large margin and fails on any formula error
                // (a wrong factor changes λ at order 1).
                for k in 0 .. r.New.Lambdas.Length - 1 do
                    Expect.isTrue (relClose r.New.Lambdas[k] r.Old.Lambdas[k] 1e-10) $"λ_{k}: {r.New.Lambdas[k]} vs {r.Old.Lambdas[k]}"
                use pNew = products r.New
                use pOld = products r.Old
                for k in 0L .. pNew.shape[0] - 1L do
                    use a = pNew[k]
                    use o = pOld[k]
                    Expect.isTrue (allClose a o 1e-10) $"α_{k}ω_{k}ᵀ (max diff {maxAbsDiff a o}, max {maxAbs o})"
                Expect.isTrue (allClose r.NewUpdate.Delta r.OldUpdate.Delta 1e-10) $"δ (max diff {maxAbsDiff r.NewUpdate.Delta r.OldUpdate.Delta})"
                Expect.isTrue (relClose r.NewUpdate.Decrease r.OldUpdate.Decrease 1e-10) "Δ"
                Expect.isTrue (relClose r.NewUpdate.Bottleneck r.OldUpdate.Bottleneck 1e-10) "bottleneck"
            finally r.Dispose ()
        }

        test "the factor satisfies WᵀW = A⁺ and solvePsd = A⁺X, on both paths" {
            let d = 40L
            use q = randn 111L d (3L * d)
            use wellConditioned = q.mm (q.t ())
            use q2 = randn 112L d 25L
            use singular = q2.mm (q2.t ()) // rank 25 < 40
            use x = randn 113L d 3L
            use eye = torch.eye (d, dtype = f64)
            for a, expected in [ wellConditioned, "cholesky"; singular, "eigh" ] do
                use f = psdFactor a 1e-10
                Expect.equal (if isCholesky f then "cholesky" else "eigh") expected "path"
                use w = factorTimes f eye
                use wtw = factorTransposeTimes f w
                use pinv = pinvPsd a 1e-10
                // Condition ≤ ~1e2 on the kept eigenspace: both sides accurate to ~1e-14.
                Expect.isTrue (allClose wtw pinv 1e-10) $"{expected}: WᵀW = A⁺ (max diff {maxAbsDiff wtw pinv})"
                use solved = solvePsd f x
                use reference = pinv.mm x
                Expect.isTrue (allClose solved reference 1e-10) $"{expected}: solvePsd = A⁺X"
        }

        test "duplicated features (exactly singular S, S2): eigh fallback, same λ, decrease, δ and function added" {
            let b0, bt0, g = junction 121L 500L 8L 30L 5L
            use b0 = b0
            use bt0 = bt0
            use g = g
            // Duplicate one input of A and one of B.
            use bt = torch.cat ([| bt0; bt0.narrow (1L, 3L, 1L) |], 1L)
            use b = torch.cat ([| b0; b0.narrow (1L, 2L, 1L) |], 1L)
            use stats = statsOf b bt g
            let c2 = Bottleneck.effectiveCutoff 1e-10 stats stats.S2.shape[0]
            Expect.equal (pathOf stats.S2 c2) "eigh" "singular S2: the rank-revealing fallback"
            Expect.equal (pathOf stats.S (Bottleneck.effectiveCutoff 1e-10 stats stats.S.shape[0])) "eigh" "singular S: fallback for δ"
            let r = both stats 1e-10
            try
                for t in [ r.New.FanIn; r.New.FanOut; r.NewUpdate.Delta ] do Expect.isTrue (isFinite t) "finite"
                Expect.equal r.New.Lambdas.Length r.Old.Lambdas.Length "same number of directions"
                // Both keep the same 30-dimensional eigenspace (the duplicate's eigenvalue is 0 exactly
                // up to ~1e-16·λmax, far under the 1e-10 cutoff); condition there ~1e2.
                for k in 0 .. r.New.Lambdas.Length - 1 do
                    Expect.isTrue (relClose r.New.Lambdas[k] r.Old.Lambdas[k] 1e-10) $"λ_{k}"
                let predicted (u: Bottleneck.ExistingWeightsUpdate) (d: Bottleneck.NeuronDirections) = u.Decrease + Array.sumBy (fun l -> l * l) d.Lambdas
                Expect.isTrue (relClose (predicted r.NewUpdate r.New) (predicted r.OldUpdate r.Old) 1e-10) "predicted decrease Δ + Σλ²"
                use fNew = added bt r.New
                use fOld = added bt r.Old
                Expect.isTrue (allClose fNew fOld 1e-10) $"Σ b̃α_k ω_kᵀ on the data (max diff {maxAbsDiff fNew fOld})"
                // δ is the minimum-norm solution on both paths: equal, not only equally good.
                Expect.isTrue (allClose r.NewUpdate.Delta r.OldUpdate.Delta 1e-10) "δ (minimum norm)"
            finally r.Dispose ()
        }

        test "fewer samples than D2 (20 rows, D2 = 41, 25 outputs): eigh fallback, same λ, decrease and function added" {
            let b, bt, g = junction 131L 20L 6L 40L 25L
            use b = b
            use bt = bt
            use g = g
            use stats = statsOf b bt g
            let c2 = Bottleneck.effectiveCutoff 1e-10 stats stats.S2.shape[0]
            Expect.equal (pathOf stats.S2 c2) "eigh" "rank-20 S2: fallback"
            let r = both stats 1e-10
            try
                for t in [ r.New.FanIn; r.New.FanOut; r.NewUpdate.Delta ] do Expect.isTrue (isFinite t) "finite"
                // The eigh path returns min(D2, out) = 25 directions, the last 5 of rounding size; the
                // rank-20 factor returns the 20 real ones.
                Expect.equal r.New.Lambdas.Length 20 "min(rank S2, out) directions"
                Expect.equal r.Old.Lambdas.Length 25 "eigh path: min(D2, out)"
                // v_proj = −(g − δb) is orthogonal, across the 20 samples, to B's 7 inputs: N has rank
                // 20 − 7 = 13 and only 13 directions are real on either path; the rest are rounding.
                let real (d: Bottleneck.NeuronDirections) = d.Lambdas |> Array.filter (fun l -> l > 1e-10 * d.Lambdas[0]) |> Array.length
                Expect.equal (real r.New) 13 "13 real directions (new)"
                Expect.equal (real r.Old) 13 "13 real directions (eigh)"
                // S2 restricted to its 20-dimensional range has condition ~1e2–1e3 here.
                for k in 0 .. 12 do
                    Expect.isTrue (relClose r.New.Lambdas[k] r.Old.Lambdas[k] 1e-9) $"λ_{k}: {r.New.Lambdas[k]} vs {r.Old.Lambdas[k]}"
                let sumSq (d: Bottleneck.NeuronDirections) = Array.sumBy (fun l -> l * l) d.Lambdas
                Expect.isTrue (relClose (sumSq r.New) (sumSq r.Old) 1e-10) "Σλ² (the new neurons' predicted decrease)"
                use fNew = added bt r.New
                use fOld = added bt r.Old
                Expect.isTrue (allClose fNew fOld 1e-9) $"Σ b̃α_k ω_kᵀ on the data (max diff {maxAbsDiff fNew fOld})"
            finally r.Dispose ()
        }

        test "pivots cannot reveal every small eigenvalue: the 1-D Laplacian falls back to eigh and matches it" {
            // tridiag(−1, 2, −1), D = 300: every Cholesky pivot is (i+1)/i ≥ 1, yet λmin = 4 sin²(π/602)
            // ≈ 1.09e-4 < 1e-4·λmax (≈ 4): eigh drops that direction. A pivot test alone would take
            // Cholesky, and L⁻¹ would amplify it ~100×.
            let d = 300L
            use two = torch.eye (d, dtype = f64) * 2.0
            use off = torch.diag (torch.ones ([| d - 1L |], dtype = f64), 1L)
            use s2 = two - off - off.t ()
            let cutoff = 1e-4
            let struct (l, info) = torch.linalg.cholesky_ex s2
            use l = l
            use info = info
            use piv = l.diagonal().square ()
            Expect.isGreaterThanOrEqual (piv.min().ToDouble ()) 1.0 "every pivot ≥ 1"
            Expect.equal (pathOf s2 cutoff) "eigh" "the power-iteration bound catches λmin below the cutoff"
            use n = randn 141L d 3L
            let dNew = Bottleneck.neuronDirections s2 n cutoff true
            let dOld = Bottleneck.neuronDirectionsEigh s2 n cutoff
            use _a = dNew.FanIn
            use _b = dNew.FanOut
            use _c = dOld.FanIn
            use _d = dOld.FanOut
            for k in 0 .. 2 do
                Expect.isTrue (relClose dNew.Lambdas[k] dOld.Lambdas[k] 1e-10) $"λ_{k}: {dNew.Lambdas[k]} vs {dOld.Lambdas[k]}"
            use pNew = products dNew
            use pOld = products dOld
            Expect.isTrue (allClose pNew pOld 1e-10) "α_kω_kᵀ"
            // What the fallback avoids: unconditional Cholesky whitening gives another λ_1.
            use ln = torch.linalg.solve_triangular (l, n, upper = false)
            use sv = torch.linalg.svdvals ln
            let choleskyL1 = sv[0].ToDouble ()
            // (measured: 104.4 against 96.6, 8 % apart; the tolerance above is 1e-10)
            Expect.isFalse (relClose choleskyL1 dOld.Lambdas[0] 0.01) $"plain Cholesky λ_1 = {choleskyL1} differs from eigh's {dOld.Lambdas[0]}"
        }
    
        test "the kept input whitening is factorised in its rows' precision: float32 rows give the float64 factorisation's λ within their rounding level" {
            let b, bt, g = junction 951L 2000L 6L 40L 4L
            let f32 (t: torch.Tensor) = t.to_type torch.ScalarType.Float32
            use stats32 = statsOf (f32 b) (f32 bt) (f32 g)
            use stats64 = statsOf b bt g
            let cutoffOf (s: JunctionStatistics) = Bottleneck.effectiveCutoff 1e-10 s s.S2.shape[0]
            let update = Bottleneck.existingWeightsUpdate stats32 1e-10
            use _ = update.Delta
            use n = Bottleneck.projectedN stats32 update.Delta
            // Float32 rows: a float32 factorisation, against a float64 one of the very same S2.
            let w32, path32 = InputWhitening.whiteningOf stats32 (cutoffOf stats32)
            use w32 = w32
            Expect.stringContains path32 "float32" "float32 rows: factorised in float32"
            Expect.equal w32.dtype torch.ScalarType.Float64 "handed over in float64"
            use f64Factor = psdFactor stats32.S2 (cutoffOf stats32)
            let d32 = Bottleneck.neuronDirectionsWith (Eigen (w32.alias ())) n
            let d64 = Bottleneck.neuronDirectionsWith f64Factor n
            // The cutoff is the rows' rounding level, (D + √rows)·2⁻²⁴ ≈ 5e-6 of λmax here; a float32
            // eigh errs by O(2⁻²⁴)·λmax, so the kept directions' λ move by far less than 1e-3.
            for k in 0 .. min 3 (d64.Lambdas.Length - 1) do
                Expect.isTrue (relClose d32.Lambdas[k] d64.Lambdas[k] 1e-3) $"λ_{k}: {d32.Lambdas[k]} against {d64.Lambdas[k]}"
            Expect.isTrue (relClose (Array.sumBy (fun l -> l * l) d32.Lambdas) (Array.sumBy (fun l -> l * l) d64.Lambdas) 1e-3) "Σλ² (the first-order decrease)"
            for t in [ d32.FanIn; d32.FanOut; d64.FanIn; d64.FanOut ] do t.Dispose ()
            // Float64 rows: the float64 factorisation, unchanged.
            let w64, path64 = InputWhitening.whiteningOf stats64 (cutoffOf stats64)
            use w64 = w64
            Expect.stringContains path64 "float64" "float64 rows: factorised in float64"
            use reference = psdFactor stats64.S2 (cutoffOf stats64)
            use wtw = w64.t().mm w64
            use referenceW =
                match reference with
                | Cholesky l -> (use eye = torch.eye (l.shape[0], dtype = f64) in torch.linalg.solve_triangular (l, eye, upper = false))
                | Eigen w -> w.clone ()
            use referenceWtw = referenceW.t().mm referenceW
            Expect.isTrue (identical wtw referenceWtw) "the same factor as before"
        }

        test "the input whitening computed once equals a fresh factor on the same samples, and gives the same proposal" {
            use net = mlp 901L f64 6 [ 4; 3 ] "tanh" 3
            use x = randn 902L 300L 6L
            use y = labels 903L 300L 3L
            Expect.equal (InputWhitening.readsInput net x) [ 0 ] "only junction 0's A reads the network's input"
            let options = GrowthOptions (RowsPerDimension = 0, RelativeThreshold = 0.0)
            use w = InputWhitening.inputWhitening net 0 options null x y
            use stats = (StatisticsPass.statisticsFor [| 0 |] 0 null net x y 300L)[0]
            // WᵀW = S2⁺ (the fresh pseudo-inverse from the same samples).
            use wtw = w.t().mm w
            use pinv = pinvPsd stats.S2 (Bottleneck.effectiveCutoff options.EigenCutoff stats stats.S2.shape[0])
            Expect.isTrue (allClose wtw pinv 1e-10) $"WᵀW = S2⁺ (max diff {maxAbsDiff wtw pinv})"
            use fresh = tiny.Propose (GrowthRequest (stats, net.Junctions[0], 3, options, null))
            use cached = tiny.Propose (GrowthRequest (stats, net.Junctions[0], 3, options, null, Whitening = w))
            Expect.equal cached.Count fresh.Count "same number of neurons"
            for k in 0 .. fresh.Count - 1 do
                Expect.floatClose { absolute = 0.0; relative = 1e-10 } cached.NeuronScores[k] fresh.NeuronScores[k] $"λ_{k}²"
            // α_k ω_kᵀ summed over k: signs of single directions are arbitrary, the added map is not.
            use mapFresh = fresh.FanOut.mm fresh.FanIn
            use mapCached = cached.FanOut.mm cached.FanIn
            Expect.isTrue (allClose mapCached mapFresh 1e-9) $"Σ ω_k α_kᵀ equal (max diff {maxAbsDiff mapCached mapFresh})"
        }
        test "fewer samples than inputs: the input whitening from the rows' QR equals the eigh path's, and gives the same proposal" {
            // 40 inputs + bias = D2 41 > 30 samples: S2 has rank ≤ 30, so W comes from the rows.
            use net = mlp 921L f64 40 [ 4; 3 ] "tanh" 3
            use x = randn 922L 30L 40L
            use y = labels 923L 30L 3L
            let options = GrowthOptions (RowsPerDimension = 0, RelativeThreshold = 0.0)
            use cache = InputWhitening.inputCovariance net 0 options null x y
            Expect.stringStarts cache.Path "QR of the rows" $"the rows' path ({cache.Path})"
            use stats = (StatisticsPass.statisticsFor [| 0 |] 0 null net x y 300L)[0]
            let cutoff = Bottleneck.effectiveCutoff options.EigenCutoff stats stats.S2.shape[0]
            let eighW, eighPath = InputWhitening.whiteningOf stats cutoff
            use eighW = eighW
            Expect.stringStarts eighPath "eigh" "S2 itself is singular: eigh"
            Expect.equal cache.Whitening.shape eighW.shape $"the same rank ({cache.Whitening.shape[0]} of 41)"
            use wtw = cache.Whitening.t().mm cache.Whitening
            use reference = eighW.t().mm eighW
            Expect.isLessThan (maxAbsDiff wtw reference / (use m = reference.abs().max () in m.ToDouble ())) 1e-10 "WᵀW = S2⁺ (relative to its largest entry)"
            use fromRows = tiny.Propose (GrowthRequest (stats, net.Junctions[0], 3, options, null, Whitening = cache.Whitening))
            use fromEigh = tiny.Propose (GrowthRequest (stats, net.Junctions[0], 3, options, null, Whitening = eighW))
            Expect.equal fromRows.Count fromEigh.Count "same number of neurons"
            Expect.isGreaterThan fromRows.Count 0 "neurons proposed"
            for k in 0 .. fromEigh.Count - 1 do
                Expect.floatClose { absolute = 0.0; relative = 1e-10 } fromRows.NeuronScores[k] fromEigh.NeuronScores[k] $"λ_{k}²"
            use mapRows = fromRows.FanOut.mm fromRows.FanIn
            use mapEigh = fromEigh.FanOut.mm fromEigh.FanIn
            Expect.isTrue (allClose mapRows mapEigh 1e-9) $"Σ ω_k α_kᵀ equal (max diff {maxAbsDiff mapRows mapEigh})"
            // With more samples than inputs the eigh (or Cholesky) path of S2 is kept.
            use x2 = randn 924L 60L 40L
            use y2 = labels 925L 60L 3L
            use full = InputWhitening.inputCovariance net 0 options null x2 y2
            Expect.isFalse (full.Path.StartsWith "QR") $"60 samples > 41: {full.Path}"
        }
        test "with its input covariance cached the statistics pass does not form S2, and the proposal is the one with S2 formed" {
            use net = mlp 911L f64 6 [ 4; 3 ] "tanh" 3
            use x = randn 912L 600L 6L
            use y = labels 913L 600L 3L
            let options = GrowthOptions (RowsPerDimension = 0, RelativeThreshold = 0.0)
            // The cache is taken on other samples than the step's, as the engine does: its S2 differs
            // from the step's own, so an S2 formed in the pass would show.
            use cache = InputWhitening.inputCovariance net 0 options null (x.narrow (0L, 0L, 300L)) (y.narrow (0L, 0L, 300L))
            let stepX, stepY = x.narrow (0L, 300L, 300L), y.narrow (0L, 300L, 300L)
            use formed = (StatisticsPass.statisticsFor [| 0 |] 0 null net stepX stepY 100L)[0]
            use skipped = (StatisticsPass.statisticsWith (fun _ -> 0) (fun j -> if j = 0 then cache.S2 else null) 0 [| 0 |] 0 null net stepX stepY 100L)[0]
            Expect.isFalse (allClose formed.S2 cache.S2 1e-3) "the cached S2 is not the step's own"
            Expect.isTrue (identical skipped.S2 cache.S2) "the pass hands over the cached S2, not one it formed"
            for name, a, b in [ "S", skipped.S, formed.S; "M", skipped.M, formed.M; "M2", skipped.M2, formed.M2; "P", skipped.P, formed.P ] do
                Expect.isTrue (identical a b) $"{name} is the one formed with S2"
            Expect.isFalse (Statistics.JunctionAccumulator (0, cache.S2)).FormsS2 "no groups: S2 is not formed"
            Expect.isFalse (Statistics.JunctionAccumulator (4, cache.S2)).FormsS2 "with groups too: their S2 are kept as rows"
            use withFormed = tiny.Propose (GrowthRequest (formed, net.Junctions[0], 3, options, null, Whitening = cache.Whitening))
            use withSkipped = tiny.Propose (GrowthRequest (skipped, net.Junctions[0], 3, options, null, Whitening = cache.Whitening))
            Expect.isGreaterThan withFormed.Count 0 "neurons proposed"
            Expect.sequenceEqual withSkipped.NeuronScores withFormed.NeuronScores "same λ_k², bit for bit"
            Expect.isTrue (identical withSkipped.FanIn withFormed.FanIn && identical withSkipped.FanOut withFormed.FanOut) "same α and ω, bit for bit"
        }
    ]
