/// Time of one proposal (δ, N, whitening, SVD) against A's input size D2: the eigh path (before
/// issue 10) and the factor path (Cholesky where S2 is well conditioned at its cutoff, eigh over the
/// kept eigenpairs otherwise), side by side in one process, alternated, medians and ratios.
module TinyGrow.Bench.WhiteningTime

open System
open System.Diagnostics
open System.IO
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Bench.Measure

let private f64 = torch.ScalarType.Float64

/// Statistics of a synthetic junction: n rows of D2−1 uncentred features (mean 0.5, 16 strong
/// factors over an isotropic bulk, like pixels), a tanh hidden layer of 32 (D1 = 33), 10 outputs.
/// Rows are added 1,024 at a time (as the statistics pass does), in `dtype`.
let private synthetic (d2: int64) (n: int64) (dtype: torch.ScalarType) =
    use g = new torch.Generator (uint64 d2)
    let acc = Statistics.JunctionAccumulator ()
    use factors = torch.randn ([| 16L; d2 - 1L |], dtype = f64, generator = g)
    use wa = torch.randn ([| d2; 32L |], dtype = f64, generator = g) / sqrt (float d2)
    use c = torch.randn ([| 33L; 10L |], dtype = f64, generator = g)
    let mutable start = 0L
    while start < n do
        use scope = torch.NewDisposeScope ()
        let count = min 1024L (n - start)
        let z = torch.randn ([| count; d2 - 1L |], dtype = f64, generator = g) * 0.3
        let f = torch.randn ([| count; 16L |], dtype = f64, generator = g)
        let x = z + f.mm factors * 0.5 + 0.5
        let ones = torch.ones ([| count; 1L |], dtype = f64)
        let bt = torch.cat ([| x; ones |], 1L)
        let b = torch.cat ([| bt.mm(wa).tanh (); ones |], 1L)
        let grad = b.mm c + torch.randn ([| count; 10L |], dtype = f64, generator = g)
        use rows = new JunctionRows (b.to_type dtype, bt.to_type dtype, grad.to_type dtype, count)
        acc.Add rows
        start <- start + count
    acc.Finish ()

/// One proposal's solves, either path; every tensor disposed.
let private propose (useFactor: bool) (stats: JunctionStatistics) =
    let cutoff = 1e-10
    let update = if useFactor then Bottleneck.existingWeightsUpdate stats cutoff else Bottleneck.existingWeightsUpdateEigh stats cutoff
    use delta = update.Delta
    use n = Bottleneck.projectedN stats delta
    let c2 = Bottleneck.effectiveCutoff cutoff stats stats.S2.shape[0]
    let d = if useFactor then Bottleneck.neuronDirections stats.S2 n c2 true else Bottleneck.neuronDirectionsEigh stats.S2 n c2
    d.FanIn.Dispose ()
    d.FanOut.Dispose ()
    d.Lambdas


type Row =
    { Case: string; D2: int64; Path: string; Old: float; New: float; Ratio: float; MaxLambdaDiff: float }

/// Old and new on the same statistics, alternated `reps` times: medians and the median ratio.
let measure (case: string) (stats: JunctionStatistics) (reps: int) =
    let c2 = Bottleneck.effectiveCutoff 1e-10 stats stats.S2.shape[0]
    let path =
        use f = LinearAlgebra.psdFactor stats.S2 c2
        match f with
        | LinearAlgebra.Cholesky _ -> "cholesky"
        | LinearAlgebra.Eigen w -> $"eigh (rank {w.shape[0]})"
    let lNew = propose true stats
    let lOld = propose false stats
    let k = min 10 (min lNew.Length lOld.Length)
    let diff = Seq.max [ for i in 0 .. k - 1 -> abs (lNew[i] - lOld[i]) / lOld[0] ]
    let runs = [ for _ in 1 .. reps -> let o = elapsed (fun () -> propose false stats |> ignore) in o, elapsed (fun () -> propose true stats |> ignore) ]
    let row =
        { Case = case; D2 = stats.S2.shape[0]; Path = path
          Old = median (List.map fst runs); New = median (List.map snd runs)
          Ratio = median [ for o, n in runs -> n / o ]; MaxLambdaDiff = diff }
    printfn "%-34s D2 %5d  %-16s old %7.3f s  new %7.3f s  new/old %.3f  max|Δλ|/λ1 %.1e" row.Case row.D2 row.Path row.Old row.New row.Ratio row.MaxLambdaDiff
    row

/// Rows of the real input junction of Fashion-MNIST (784 pixels + bias → 32 → 32 → 10, tanh, at
/// initialisation), 4,096 samples, with the network (so the rows) in `dtype`.
let fashionStats (data: LoadedDataset) (kinds: Collections.Generic.IReadOnlyDictionary<string, ILayerKind>) (dtype: torch.ScalarType) =
    use generator = new torch.Generator (1UL)
    let model = ModelOptions (Layers = ResizeArray [ for w in [ 32; 32 ] -> LayerSpec (Kind = "dense", Width = w, MaxWidth = 256, Activation = "tanh") ])
    use net = Network.Build (Kinds.blockKinds, kinds, model, data.InputShape, data.Classes, torch.CPU, dtype, generator)
    use x0 = data.Pipeline.Inputs (data.Train.Samples.narrow (0L, 0L, 4096L))
    use x = x0.to_type dtype
    let stats = StatisticsPass.statisticsPass net x (data.Train.Labels.narrow (0L, 0L, 4096L)) 1024L
    for s in stats[1..] do s.Dispose ()
    stats[0]

let write (rows: Row list) =
    Directory.CreateDirectory "docs" |> ignore
    let lines =
        [ yield "| statistics | D2 | factor path taken | eigh path (s) | factor path (s) | new/old (median of ratios) | max abs(λ_new − λ_eigh)/λ_1 |"
          yield "|---|---:|---|---:|---:|---:|---:|"
          for r in rows ->
            $"| {r.Case} | {r.D2} | {r.Path} | %.3f{r.Old} | %.3f{r.New} | %.3f{r.Ratio} | %.0e{r.MaxLambdaDiff} |" ]
    File.WriteAllLines ("docs/whitening-time.md", lines)
    lines |> List.iter (printfn "%s")
    let plot = new ScottPlot.Plot ()
    for case in rows |> List.map (fun r -> r.Case) |> List.distinct do
        let rs = rows |> List.filter (fun r -> r.Case = case) |> List.sortBy (fun r -> r.D2)
        if rs.Length > 1 then
            let xs = rs |> List.map (fun r -> float r.D2) |> Array.ofList
            let o = plot.Add.Scatter (xs, rs |> List.map (fun r -> 1000.0 * r.Old) |> Array.ofList)
            o.LegendText <- $"eigh path, {case}"
            let n = plot.Add.Scatter (xs, rs |> List.map (fun r -> 1000.0 * r.New) |> Array.ofList)
            n.LegendText <- $"factor path, {case}"
    plot.Title "One proposal (δ, N, whitening, SVD) against D2, float64 solves, 2 CPU threads"
    plot.XLabel "D2 (A's inputs + bias)"
    plot.YLabel "milliseconds (median)"
    plot.ShowLegend () |> ignore
    plot.SavePng ("docs/whitening-time.png", 900, 500) |> ignore
    printfn "written: docs/whitening-time.md, docs/whitening-time.png"

/// The whole bench: synthetic junctions at D2 ∈ `sizes` with float64 and float32 rows, then the real
/// Fashion-MNIST input junction (D2 = 785) with float32 rows (as training makes them) and float64 rows.
let run (sizes: int64 list) (fashion: unit -> (torch.ScalarType -> JunctionStatistics) option) =
    let reps = 5
    let rows =
        [ for dtype, name in [ f64, "synthetic, float64 rows"; torch.ScalarType.Float32, "synthetic, float32 rows" ] do
            for d2 in sizes do
                use stats = synthetic d2 (max 4096L (2L * d2)) dtype
                yield measure name stats reps
          match fashion () with
          | Some statsOf ->
              for dtype, name in [ torch.ScalarType.Float32, "Fashion-MNIST input, float32 rows"; f64, "Fashion-MNIST input, float64 rows" ] do
                  use stats = statsOf dtype
                  yield measure name stats reps
          | None -> () ]
    write rows
    0

/// Where a factor's time goes on one statistic (diagnostics for the table above).
let parts (stats: JunctionStatistics) =
    let a = stats.S2
    let c2 = Bottleneck.effectiveCutoff 1e-10 stats a.shape[0]
    let t name f = let r = [ for _ in 1 .. 3 -> elapsed f ] in printfn "  %-28s %7.4f s" name (median r)
    t "cholesky_ex" (fun () -> let struct (l, i) = torch.linalg.cholesky_ex a in l.Dispose (); i.Dispose ())
    t "eigh" (fun () -> let struct (v, w) = torch.linalg.eigh a in v.Dispose (); w.Dispose ())
    t "eighKept" (fun () -> let v, w = LinearAlgebra.eighKept a c2 in v.Dispose (); w.Dispose ())
    t "invSqrtPsd (old)" (fun () -> (LinearAlgebra.invSqrtPsd a c2).Dispose ())
    t "psdFactor (new)" (fun () -> (LinearAlgebra.psdFactor a c2 :> IDisposable).Dispose ())
    // Inputs constant over the samples (variance S2_jj − S2_j,bias² = 0): exact dependencies on the bias.
    let d = a.shape[0]
    use mean = a.narrow(1L, d - 1L, 1L).narrow (0L, 0L, d - 1L)
    use diag = a.diagonal().narrow (0L, 0L, d - 1L)
    use variance = diag - mean.squeeze(1L).square ()
    use constant = variance.le ((1e-12 * diag.max().ToDouble ()).ToScalar ())
    printfn "  inputs constant over the samples: %d" (constant.sum().ToInt64 ())

/// `whitening-precision [D2 ...]`: the kept input whitening of float32-row statistics factorised in
/// float32 (InputWhitening.whiteningOf, since issue 10's second session) against the same S2 factorised in
/// float64, alternated `reps` times in one process: median seconds, and how far the proposal's λ_k move.
let precision (sizes: int64 list) (reps: int) =
    printfn "| D2 | rows | path (float32) | float64 factor (s) | float32 factor (s) | float32/float64 | max relative change of λ_1..λ_4 | relative change of Σλ² |"
    printfn "|---:|---:|---|---:|---:|---:|---:|---:|"
    for d2 in sizes do
        let rows = 8192L
        use stats = synthetic d2 rows torch.ScalarType.Float32
        let cutoff = Bottleneck.effectiveCutoff 1e-10 stats stats.S2.shape[0]
        let factor64 () =
            use f = LinearAlgebra.psdFactor stats.S2 cutoff
            match f with
            | LinearAlgebra.Cholesky l -> (use eye = torch.eye (l.shape[0], dtype = f64) in torch.linalg.solve_triangular (l, eye, upper = false))
            | LinearAlgebra.Eigen w -> w.clone ()
        let factor32 () = InputWhitening.whiteningOf stats cutoff
        let mutable t64, t32 = [], []
        let mutable path = ""
        for _ in 1 .. reps do
            let w, s = timed factor64
            w.Dispose ()
            t64 <- s :: t64
            let (w, p), s = timed factor32
            w.Dispose ()
            path <- p
            t32 <- s :: t32
        let update = Bottleneck.existingWeightsUpdate stats 1e-10
        use _ = update.Delta
        use n = Bottleneck.projectedN stats update.Delta
        use w64 = factor64 ()
        let w32, _ = factor32 ()
        use w32 = w32
        let d64 = Bottleneck.neuronDirectionsWith (LinearAlgebra.Eigen (w64.alias ())) n
        let d32 = Bottleneck.neuronDirectionsWith (LinearAlgebra.Eigen (w32.alias ())) n
        let k = min 4 (min d64.Lambdas.Length d32.Lambdas.Length)
        let change = [ for i in 0 .. k - 1 -> abs (d32.Lambdas[i] - d64.Lambdas[i]) / d64.Lambdas[i] ] |> List.fold max 0.0
        let total (d: Bottleneck.NeuronDirections) = d.Lambdas |> Array.sumBy (fun l -> l * l)
        for t in [ d64.FanIn; d64.FanOut; d32.FanIn; d32.FanOut ] do t.Dispose ()
        let m64, m32 = median t64, median t32
        printfn "| %d | %d | %s | %.3f | %.3f | %.2f | %.1e | %.1e |" d2 rows path m64 m32 (m32 / m64) change (abs (total d32 - total d64) / total d64)
