/// Growth:CrossValidationRows: a conv junction's row sample (the unit fan-out refit and the cross-validated
/// prediction) drawn from every row of the statistics' batches, not from the few rows the sums use.
module TinyGrow.Tests.CrossValidationRowsTests

open Expecto
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Tests.TestUtil
open TinyGrow.Tests.Fixtures
open TinyGrow.Tests.ConvTests

/// conv(3) → BN → relu → conv(4) → BN → relu → GAP → dense(2) → 3 logits, float64, 8×8 inputs (64 positions).
let private network () =
    cnn 301L f64 [| 2L; 8L; 8L |] [ conv 3 3 1 1 1 false true "relu" "none"; conv 4 3 1 1 1 false true "relu" "none"; denseSpec 2 ] "gap" 3

/// Junction 0's statistics over 256 images in batches of 64, the row sample as `keep` rows drawn from every row
/// (`fromEveryRow`) or from the sums' rows, the sums on `rowsPerDimension`·RowSize rows (0: every row).
let private statistics (keep: int) (fromEveryRow: bool) (rowsPerDimension: int) =
    use net = network ()
    use x = images 311L 256L 2L 8L
    use y = labels 312L 256L 3L
    use g = new torch.Generator (313UL)
    (StatisticsPass.statisticsSampled (fun _ -> keep) fromEveryRow (fun _ -> null) 0 [| 0 |] rowsPerDimension g net x y 64L)[0]

/// The statistics' row sample (failing the test when there is none).
let private rowSample (stats: JunctionStatistics) : JunctionRows =
    match stats.RowSample with
    | NonNull rows -> rows
    | _ -> failtest "no row sample"

/// The batch of each row of the sample.
let private rowBatches (stats: JunctionStatistics) : int64[] =
    match stats.RowSampleBatches with
    | NonNull b -> b.data<int64>().ToArray ()
    | _ -> failtest "no row batches"

/// M2 = Σ w b̃ gᵀ / samples from a row sample.
let private sampleM2 (rows: JunctionRows) =
    let s = NewUnits.sampleOf rows
    s.BT.t().mm(s.G).mul (s.Scale.ToScalar ())

let tests =
    testList "cross-validation rows" [
        test "drawn from every row, a sample as large as the rows is every row: its weighted M2 is the statistics' M2 (float64)" {
            // 256 images × 64 positions = 16,384 rows; the sums on every row as well.
            use stats = statistics 1_000_000 true 0
            let sample = rowSample stats
            Expect.equal sample.B.shape[0] 16384L "every (image, position) row"
            use m2 = sampleM2 sample
            Expect.isLessThan ((m2 - stats.M2).abs().max().ToDouble ()) (1e-12 * (stats.M2.abs().max().ToDouble ())) "the same sums"
        }

        test "drawn from every row, the sample has the rows asked for whatever RowsPerDimension, spread over every batch" {
            // The sums keep 32·RowSize rows (a few hundred); the sample 4,000 of the 16,384.
            use stats = statistics 4000 true 32
            let sample = rowSample stats
            Expect.equal sample.B.shape[0] 4000L "4,000 rows"
            let batches = rowBatches stats |> Array.countBy id |> Array.sortBy fst
            Expect.equal (batches |> Array.map fst) [| 0L; 1L; 2L; 3L |] "rows from each of the 4 batches"
            Expect.isTrue (batches |> Array.forall (fun (_, n) -> n = 1000)) $"1,000 rows per batch: %A{batches}"
            // The weight makes the sample stand for every row: weight × rows kept = every row, per sample.
            let s = NewUnits.sampleOf sample
            Expect.floatClose Accuracy.high (s.Scale * 4000.0) (16384.0 / 256.0) "Scale · 4,000 rows = 64 positions per sample"
            // And the rows are the junction's (b̃ of the right rows): their S2 = Σ w b̃b̃ᵀ / samples is the exact S2
            // to sampling error (about √(D2/rows) ≈ 7 % here; a misaligned or mis-weighted draw is off by far more).
            use exact = statistics 0 false 0
            use s2 = s.BT.t().mm(s.BT).mul (s.Scale.ToScalar ())
            let error = (s2 - exact.S2).norm().ToDouble () / exact.S2.norm().ToDouble ()
            Expect.isLessThan error 0.15 $"a quarter of the rows estimates S2 to {error:F4} (relative)"
        }

        test "taken from the sums' rows (the default), the sample is at most those rows" {
            use stats = statistics 4000 false 32
            let sample = rowSample stats
            Expect.isLessThan sample.B.shape[0] 4000L $"{sample.B.shape[0]} rows: no more than the sums drew"
        }

        test "sampleRowsFor: CrossValidationRows when set, 4,096 when not, 0 for a junction without unit new units" {
            use net = network ()
            let unit rows = GrowthOptions (NewUnits = "unit", CrossValidationRows = rows)
            Expect.equal (NewUnits.sampleRowsFor (unit 50000) net.Junctions[0]) 50000 "set"
            Expect.equal (NewUnits.sampleRowsFor (unit 0) net.Junctions[0]) 4096 "default"
            Expect.equal (NewUnits.sampleRowsFor (GrowthOptions (NewUnits = "scaled", CrossValidationRows = 50000)) net.Junctions[0]) 0 "scaled: none"
        }
    ]
