/// Statistics (DESIGN §4) against brute force: δ is the least-squares fit of g on b, Δ and the
/// bottleneck are its explained and residual sums of squares, and the statistics do not depend on
/// how the data is cut into batches.
module TinyGrow.Tests.StatisticsTests

open Expecto
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Tests.TestUtil
open TinyGrow.Tests.Fixtures

/// Rows of junction 0 of a one-hidden-layer network, computed directly: b = [h, 1],
/// b̃ = [x, 1], g = softmax(z) − onehot(y) (the gradient of the summed cross-entropy).
let private directRows (net: Network) (x: torch.Tensor) (y: torch.Tensor) =
    use _ = torch.no_grad ()
    let a, b = (layerOf net 0), (layerOf net 1)
    use z = a.Forward x
    use h = a.Activate z
    use logits = b.Forward h
    use p = torch.nn.functional.softmax (logits, 1L)
    use oneHot = torch.nn.functional.one_hot (y, logits.shape[1])
    use target = oneHot.to_type f64
    use ones = torch.ones ([| x.shape[0]; 1L |], dtype = f64)
    torch.cat ([| h; ones |], 1L), torch.cat ([| x; ones |], 1L), p - target

let private handRows (seed: int64) (n: int64) (d1: int64) (d2: int64) (out: int64) =
    new JunctionRows (randn seed n d1, randn (seed + 1L) n d2, randn (seed + 2L) n out, n)

let private accumulate (rows: JunctionRows list) =
    let acc = Statistics.JunctionAccumulator ()
    for r in rows do acc.Add r
    acc.Finish ()

let tests =
    testList "statistics" [
        test "statistics, δ, Δ and bottleneck equal a brute-force least-squares fit" {
            use net = mlp 11L f64 5 [ 4 ] "tanh" 3
            use x = randn 12L 100L 5L
            use y = labels 13L 100L 3L
            // 100 = 3·32 + 4: uneven batches on purpose.
            let stats = StatisticsPass.statisticsPass net x y 32L
            use s = stats[0]
            let b, bt, g = directRows net x y
            use b = b
            use bt = bt
            use g = g
            let n = 100.0
            // float64 sums of 100 products of O(1) numbers: rounding is ~1e-15 relative; 1e-12
            // leaves room for reordered sums and still catches any missing 1/n or wrong operand.
            let tol = 1e-12
            Expect.isTrue (allClose s.S (b.t().mm b / n) tol) "S = Σ b bᵀ / n"
            Expect.isTrue (allClose s.M (b.t().mm g / n) tol) "M = Σ b gᵀ / n"
            Expect.isTrue (allClose s.S2 (bt.t().mm bt / n) tol) "S2 = Σ b̃ b̃ᵀ / n"
            Expect.isTrue (allClose s.M2 (bt.t().mm g / n) tol) "M2 = Σ b̃ gᵀ / n"
            Expect.isTrue (allClose s.P (bt.t().mm b / n) tol) "P = Σ b̃ bᵀ / n"
            let traceE = g.square().sum().item<float> () / n
            Expect.floatClose { absolute = 0.0; relative = tol } s.TraceE traceE "tr E = Σ |g|² / n"
            Expect.equal s.Samples 100L "samples"

            let update = Bottleneck.existingWeightsUpdate s 1e-10
            use delta = update.Delta
            let struct (solution, residuals, rank, singular) = torch.linalg.lstsq (b, g)
            use _r = residuals
            use _k = rank
            use _s = singular
            use bruteDelta = solution.t().contiguous ()
            solution.Dispose ()
            // b is 100×5 with condition number ~10: both solves are accurate to ~1e-14; 1e-10
            // relative still fails on any real error (a wrong transpose or sign is O(1)).
            Expect.isTrue (allClose delta bruteDelta 1e-10) $"δ = lstsq(b, g)ᵀ (max diff {maxAbsDiff delta bruteDelta})"
            use fit = b.mm (bruteDelta.t ())
            let explained = fit.square().sum().item<float> () / n
            let residual = (g - fit).square().sum().item<float> () / n
            // Same reasoning as for δ: sums of squares of accurate quantities, ~1e-14 relative.
            Expect.floatClose { absolute = 0.0; relative = 1e-10 } update.Decrease explained "Δ = Σ |δ b|² / n"
            Expect.floatClose { absolute = 1e-12 * traceE; relative = 1e-9 } update.Bottleneck residual "bottleneck = Σ |g − δ b|² / n"
            Expect.isGreaterThan update.Bottleneck 0.0 "a 4-wide hidden layer cannot fit 3-class gradients exactly here"
        }

        test "duplicating the batch leaves the statistics unchanged" {
            use rows = handRows 21L 37L 6L 4L 3L
            use doubled = new JunctionRows (torch.cat ([| rows.B; rows.B |], 0L), torch.cat ([| rows.ATilde; rows.ATilde |], 0L),
                                            torch.cat ([| rows.G; rows.G |], 0L), 2L * rows.Samples)
            use once = accumulate [ rows ]
            use twice = accumulate [ doubled ]
            // Doubling sums and n is exact up to float64 rounding of reordered sums (~1e-16).
            Expect.isEmpty (statsClose once twice 1e-13) "S, M, S2, M2, P, tr E agree"
            Expect.equal twice.Samples 74L "samples counted twice"
        }

        test "duplicating the data in a statistics pass leaves the statistics unchanged" {
            use net = mlp 22L f64 5 [ 3 ] "tanh" 4
            use x = randn 23L 50L 5L
            use y = labels 24L 50L 4L
            use xx = torch.cat ([| x; x |], 0L)
            use yy = torch.cat ([| y; y |], 0L)
            use once = (StatisticsPass.statisticsPass net x y 50L)[0]
            use twice = (StatisticsPass.statisticsPass net xx yy 100L)[0]
            // float64 rounding of sums of ≤100 products: ~1e-15 relative.
            Expect.isEmpty (statsClose once twice 1e-13) "S, M, S2, M2, P, tr E agree"
        }

        test "splitting the data into uneven batches leaves the statistics unchanged" {
            use net = mlp 31L f64 6 [ 5; 4 ] "tanh" 3
            use x = randn 32L 100L 6L
            use y = labels 33L 100L 3L
            let whole = StatisticsPass.statisticsPass net x y 1000L
            // 100 = 14·7 + 2 and 100 = 3·30 + 10: two uneven cuts.
            let sevens = StatisticsPass.statisticsPass net x y 7L
            let thirties = StatisticsPass.statisticsPass net x y 30L
            for j in 0 .. 1 do
                // Only the summation order differs: float64 rounding, ~1e-15 relative.
                Expect.isEmpty (statsClose whole[j] sevens[j] 1e-13) $"junction {j}: batches of 7"
                Expect.isEmpty (statsClose whole[j] thirties[j] 1e-13) $"junction {j}: batches of 30"
                Expect.equal sevens[j].Samples 100L "samples"
            // Starting at junction 1 (the pass retaken after junction 0 grew) gives junction 1's
            // statistics alone, the same ones.
            let fromOne = StatisticsPass.statisticsPassFrom 1 0 null net x y 30L
            Expect.equal fromOne.Length 1 "junctions 1.. only"
            Expect.isEmpty (statsClose whole[1] fromOne[0] 1e-13) "junction 1 from statisticsPassFrom 1"
            for s in Array.concat [ whole; sevens; thirties; fromOne ] do s.Dispose ()
        }

        test "position patches are kept with their rows, aligned, and within the budget of the row sample" {
            // Row i of a batch: b, b̃, g and its 5×3 position patches all filled with the row's id, so alignment shows.
            let batchOf (first: float) (n: int64) =
                use ids = torch.arange (first, first + float n, dtype = f64)
                let column (width: int64) = ids.unsqueeze(1L).expand(n, width).contiguous ()
                new JunctionRows (column 2L, column 3L, column 2L, n, PositionPatches = ids.view(n, 1L, 1L).expand(n, 5L, 3L).contiguous ())
            let sampleWith (budget: int64 option) =
                let acc = Statistics.JunctionAccumulator (KeepRows = 100)
                budget |> Option.iter (fun b -> acc.PositionPatchBudget <- b)
                for first in [ 0.0; 10.0 ] do
                    use rows = batchOf first 4L
                    acc.Add rows
                acc.Finish ()
            use all = sampleWith None
            let rows = nonNull all.RowSample
            Expect.equal rows.B.shape[0] 8L "every row kept under the budget"
            let patches = nonNull rows.PositionPatches
            Expect.equal patches.shape [| 8L; 5L; 3L |] "[rows, positions, D2]"
            for k in 0L .. 7L do
                let id = rows.B[k, 0L].ToDouble ()
                Expect.equal (rows.ATilde[k, 0L].ToDouble (), rows.G[k, 1L].ToDouble ()) (id, id) $"row {k}: b̃ and g of the same row"
                Expect.isTrue ((patches[k].eq (torch.tensor id)).all().item<bool> ()) $"row {k}: its patches"
            // A budget of three rows' patches: three rows of the first batch, none of the second; the kept rows
            // stand for all eight (their weight), so sums over the sample stay unbiased.
            use cut = sampleWith (Some (3L * 5L * 3L))
            let rows = nonNull cut.RowSample
            Expect.equal (rows.B.shape[0], (nonNull rows.PositionPatches).shape[0]) (3L, 3L) "three rows and their patches"
            Expect.floatClose Accuracy.veryHigh rows.RowWeight (8.0 / 3.0) "each kept row stands for 8/3"
            Expect.isTrue ((rows.B.narrow (1L, 0L, 1L)).lt(torch.tensor 10.0).all().item<bool> ()) "from the first batch"
        }

        test "hand rows added in several uneven batches equal one batch" {
            use rows = handRows 41L 40L 5L 7L 3L
            let part (start: int64) (count: int64) =
                new JunctionRows (rows.B.narrow (0L, start, count), rows.ATilde.narrow (0L, start, count),
                                  rows.G.narrow (0L, start, count), count)
            use one = accumulate [ rows ]
            let parts = [ part 0L 3L; part 3L 30L; part 33L 1L; part 34L 6L ]
            use several = accumulate parts
            parts |> List.iter (fun p -> p.Dispose ())
            // Only the summation order differs: float64 rounding, ~1e-15 relative.
            Expect.isEmpty (statsClose one several 1e-13) "S, M, S2, M2, P, tr E agree"
            Expect.equal several.Samples 40L "samples"
        }

        test "float32 rows: every sum is the float64 sum of the float32 products, bit for bit, with a row weight of 1 and 2" {
            let f32 (t: torch.Tensor) = (use t = t in t.to_type torch.ScalarType.Float32)
            let batch (seed: int64) (n: int64) (weight: float) =
                new JunctionRows (f32 (randn seed n 5L), f32 (randn (seed + 1L) n 7L), f32 (randn (seed + 2L) n 3L), n, weight)
            // Weight 2 scales exactly, so the weighted sum has one rounding per add however it is formed.
            for weight in [ 1.0; 2.0 ] do
                let batches = [ batch 51L 13L weight; batch 61L 8L weight ]
                use s = accumulate batches
                // The reference: each product formed in float32, converted, then added in float64.
                let sumOf (product: torch.Tensor -> torch.Tensor -> torch.Tensor) (pick: JunctionRows -> torch.Tensor * torch.Tensor) =
                    let total = batches |> List.map (fun r -> let x, y = pick r in (use p = product x y in p.to_type f64) * weight) |> List.reduce (+)
                    total / 21.0
                let gram (x: torch.Tensor) (y: torch.Tensor) = x.t().mm y
                for name, actual, expected in
                    [ "S", s.S, sumOf gram (fun r -> r.B, r.B); "M", s.M, sumOf gram (fun r -> r.B, r.G)
                      "S2", s.S2, sumOf gram (fun r -> r.ATilde, r.ATilde); "M2", s.M2, sumOf gram (fun r -> r.ATilde, r.G)
                      "P", s.P, sumOf gram (fun r -> r.ATilde, r.B) ] do
                    Expect.equal actual.dtype f64 $"{name} is float64"
                    Expect.equal (maxAbsDiff actual expected) 0.0 $"{name} (weight {weight}) equals the reference bit for bit"
                batches |> List.iter (fun r -> r.Dispose ())
        }
    ]
