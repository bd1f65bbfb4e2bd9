/// The randomised input factor (issue 23, `Growth:InputFactor` = "randomized"): on matrices of known
/// spectrum (float64) it spans the exact top eigenspace, its WᵀW is S2⁺ there, its adaptive rank is
/// the exact cutoff's, and a proposal made with it is the exact factor's.
module TinyGrow.Tests.RandomizedFactorTests

open Expecto
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Core.LinearAlgebra
open TinyGrow.Tests.TestUtil
open TinyGrow.Tests.Fixtures

/// An orthonormal n×m matrix (m ≤ n).
let private orthonormalColumns (seed: int64) (n: int64) (m: int64) =
    use g = randn seed n m
    let struct (q, r) = torch.linalg.qr g
    r.Dispose ()
    q

/// Rows R = U diag(σ) Vᵀ (n×d) with S2 = RᵀR = V diag(σ²) Vᵀ, σ² given; and V.
let private rowsWithSpectrum (seed: int64) (n: int64) (d: int64) (eigenvalues: float[]) =
    let m = int64 eigenvalues.Length
    use u = orthonormalColumns seed n m
    let v = orthonormalColumns (seed + 1L) d m
    use sigma = (use l = torch.tensor (eigenvalues, dtype = f64) in l.sqrt ())
    use us = u * sigma.unsqueeze 0L
    us.mm (v.t ()), v

/// m values from `first` to `last`, geometric.
let private geometric (m: int) (first: float) (last: float) =
    Array.init m (fun i -> first * (last / first) ** (float i / float (max 1 (m - 1))))

/// sin of the largest principal angle between span(Wᵀ) and V's columns (both D-dimensional).
let private largestAngleSine (w: torch.Tensor) (v: torch.Tensor) =
    let struct (q, r) = torch.linalg.qr (w.t ())
    use q = q
    use r = r
    use vtq = v.t().mm q
    use inV = v.mm vtq
    use outside = q - inV
    use s = torch.linalg.matrix_norm (outside, ord = 2.0)
    s.ToDouble ()

/// max |A − B| / max |B|.
let private relativeDiff (a: torch.Tensor) (b: torch.Tensor) =
    maxAbsDiff a b / (use m = b.abs().max () in m.ToDouble ())

/// V_r diag(1/λ_r) V_rᵀ: S2⁺ over the eigenvalues kept.
let private pinvOn (v: torch.Tensor) (eigenvalues: float[]) (r: int) =
    use vr = v.narrow (1L, 0L, int64 r)
    use inv = torch.tensor (Array.map (fun l -> 1.0 / l) eigenvalues[.. r - 1], dtype = f64)
    use scaled = vr * inv.unsqueeze 0L
    scaled.mm (vr.t ())

let tests =
    testList "randomized input factor" [
        test "a spectrum with a gap: the factor spans the exact top eigenspace (largest principal angle < 1e-9) and WᵀW = S2⁺ there to 1e-9" {
            // 100 eigenvalues from 1 to 1e-2, then 200 from 1e-7 to 1e-9; the cutoff 1e-4 keeps the 100.
            let spectrum = Array.append (geometric 100 1.0 1e-2) (geometric 200 1e-7 1e-9)
            let rows, v = rowsWithSpectrum 2301L 300L 500L spectrum
            use rows = rows
            use v = v
            use f = randomizedFactor (Rows (rows.alias ())) 1e-4 7UL
            Expect.equal f.W.shape[0] 100L "rank 100, as the cutoff keeps"
            Expect.isFalse f.Spanned "found by a sketch, not by spanning S2's range"
            use v100 = v.narrow (1L, 0L, 100L)
            let sine = largestAngleSine f.W v100
            Expect.isLessThan sine 1e-9 $"largest principal angle against the exact top-100 eigenspace: sin = {sine:E2}"
            use wtw = f.W.t().mm f.W
            use exact = pinvOn v spectrum 100
            Expect.isLessThan (relativeDiff wtw exact) 1e-9 $"WᵀW = S2⁺ on the kept subspace ({relativeDiff wtw exact:E2})"
            // The exact factor from the same rows (QR and eigh) is the same matrix.
            use exactW = rowsFactor rows 1e-4
            use exactWtw = exactW.t().mm exactW
            Expect.isLessThan (relativeDiff wtw exactWtw) 1e-9 "WᵀW equals the exact rows factor's"
        }

        test "the adaptive rank is the exact cutoff's: one sketch for a small rank, doubling for larger, spanning S2's range when the rank is near it" {
            for rank, expectedColumns, expectedSketches in [ 10, 64L, 1; 90, 128L, 2; 180, 256L, 3; 250, 300L, 4 ] do
                let spectrum = Array.append (geometric rank 1.0 1e-2) (geometric (300 - rank) 1e-7 1e-9)
                let rows, v = rowsWithSpectrum (2400L + int64 rank) 300L 500L spectrum
                use rows = rows
                use _ = v
                use f = randomizedFactor (Rows (rows.alias ())) 1e-4 7UL
                use exact = rowsFactor rows 1e-4
                Expect.equal exact.shape[0] (int64 rank) $"the exact cutoff keeps {rank}"
                Expect.equal f.W.shape[0] (int64 rank) $"rank {rank}: the randomised factor keeps as many"
                Expect.equal f.Columns expectedColumns $"rank {rank}: sketch columns"
                Expect.equal f.Sketches expectedSketches $"rank {rank}: sketches"
                Expect.equal f.Spanned (expectedColumns = 300L) $"rank {rank}: spans S2's range only at 300 columns"
                use wtw = f.W.t().mm f.W
                use exactWtw = exact.t().mm exact
                Expect.isLessThan (relativeDiff wtw exactWtw) 1e-9 $"rank {rank}: WᵀW equals the exact factor's"
        }

        test "a rank-deficient S2 (rank 20 of 300 inputs) from the rows and from S2 itself: rank 20 and WᵀW = S2⁺ to 1e-10" {
            let spectrum = geometric 20 1.0 0.1
            let rows, v = rowsWithSpectrum 2501L 200L 300L spectrum
            use rows = rows
            use v = v
            use exact = pinvOn v spectrum 20
            use s2 = rows.t().mm rows
            for name, operator in [ "rows", Rows (rows.alias ()); "S2", Matrix (s2.alias ()) ] do
                use f = randomizedFactor operator 1e-10 7UL
                Expect.equal f.W.shape[0] 20L $"{name}: rank 20"
                Expect.equal f.Sketches 1 $"{name}: one sketch"
                use wtw = f.W.t().mm f.W
                Expect.isLessThan (relativeDiff wtw exact) 1e-10 $"{name}: WᵀW = S2⁺ ({relativeDiff wtw exact:E2})"
            // S2 = 0: nothing is kept.
            use zeros = torch.zeros ([| 50L; 80L |], dtype = f64)
            use none = randomizedFactor (Rows (zeros.alias ())) 1e-10 7UL
            Expect.equal none.W.shape [| 0L; 80L |] "S2 = 0: an empty factor"
        }

        test "no rows, or a 0×0 S2, is refused with the reason" {
            use empty = torch.zeros ([| 0L; 10L |], dtype = f64)
            let e = Expect.throwsC (fun () -> (randomizedFactor (Rows empty) 1e-3 7UL).W.Dispose ()) id
            Expect.stringContains e.Message "no rows" $"says why ({e.Message})"
            use nothing = torch.zeros ([| 0L; 0L |], dtype = f64)
            let e2 = Expect.throwsC (fun () -> (randomizedFactor (Matrix nothing) 1e-3 7UL).W.Dispose ()) id
            Expect.stringContains e2.Message "0×0" $"says why ({e2.Message})"
        }

        test "a junction's proposal with the randomised input factor equals the exact factor's (λ_k² to 1e-8, Σ ω_k α_kᵀ to 1e-7), from the rows and from S2" {
            // 200 inputs driven by 12 latent factors plus noise of 1e-3: S2 has 13 large eigenvalues (the
            // bias adds one) and the rest below the cutoff 1e-3.
            use net = mlp 2601L f64 200 [ 5; 3 ] "tanh" 3
            for samples, source in [ 150L, "the 150 rows"; 400L, "S2" ] do
                use latent = randn (2602L + samples) samples 12L
                use mix = randn 2603L 12L 200L
                use noise = randn (2604L + samples) samples 200L
                use x = latent.mm mix + noise * 1e-3
                use y = labels 2605L samples 3L
                let exactOptions = GrowthOptions (RowsPerDimension = 0, RelativeThreshold = 0.0)
                let randomOptions = GrowthOptions (RowsPerDimension = 0, RelativeThreshold = 0.0, InputFactor = "randomized")
                use exact = InputWhitening.inputCovariance net 0 exactOptions null x y
                use random = InputWhitening.inputCovariance net 0 randomOptions null x y
                Expect.stringStarts random.Path $"randomized range finder on {source}" $"{samples} samples: {random.Path}"
                Expect.isFalse (exact.Path.StartsWith "randomized") $"the exact factor by default ({exact.Path})"
                Expect.equal random.Whitening.shape exact.Whitening.shape $"{samples} samples: the same rank ({exact.Whitening.shape[0]})"
                Expect.isTrue (identical random.S2 exact.S2) "the same S2"
                use stats = (StatisticsPass.statisticsFor [| 0 |] 0 null net x y 100L)[0]
                use withExact = tiny.Propose (GrowthRequest (stats, net.Junctions[0], 3, exactOptions, null, Whitening = exact.Whitening))
                use withRandom = tiny.Propose (GrowthRequest (stats, net.Junctions[0], 3, randomOptions, null, Whitening = random.Whitening))
                Expect.isGreaterThan withExact.Count 0 "neurons proposed"
                Expect.equal withRandom.Count withExact.Count "the same number of neurons"
                for k in 0 .. withExact.Count - 1 do
                    Expect.floatClose { absolute = 0.0; relative = 1e-8 } withRandom.NeuronScores[k] withExact.NeuronScores[k] $"{samples} samples: λ_{k}²"
                use mapExact = withExact.FanOut.mm withExact.FanIn
                use mapRandom = withRandom.FanOut.mm withRandom.FanIn
                Expect.isLessThan (relativeDiff mapRandom mapExact) 1e-7 $"{samples} samples: Σ ω_k α_kᵀ ({relativeDiff mapRandom mapExact:E2})"
        }
    ]
