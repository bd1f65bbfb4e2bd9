/// `make bench ARGS="step-time [D2 ...]"`: one growth step's statistics pass + solve for a junction
/// whose A reads the network's input, against D2, in the four states issue 10 went through, side by
/// side in one process (alternated, medians): S2 formed and whitened by eigh (before issue 10); S2
/// formed, factor path (Cholesky, eigh fallback); S2 formed, whitening cached for the run; whitening
/// cached and S2 not formed (now). The γ search (the same in every state) and the one-time cost of
/// the cache are reported beside. Dense junctions (D2 − 1 inputs → 32 → 32 → 10, tanh) and conv
/// junctions (C channels of 16×16 → conv 3×3 8 → conv 3×3 8 → GAP → 10, BatchNorm, D2 = 9·C).
module TinyGrow.Bench.StepTime

open System
open System.Diagnostics
open System.IO
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Growth.Strategies
open TinyGrow.Bench.Measure

let private statsSamples = 4096L
let private heldSamples = 2048L

type Row =
    { Kind: string; D2: int64; Path: string
      Before: float; Factor: float; Cached: float; Skipped: float; Search: float; OneTime: float }

/// Synthetic inputs: uncentred (mean 0.5), 16 strong factors over an isotropic bulk (like pixels),
/// labels from a random linear teacher; float32.
let private data (shape: int64[]) (n: int64) (seed: uint64) =
    use g = new torch.Generator (seed)
    let d = Array.fold (*) 1L shape
    use factors = torch.randn ([| 16L; d |], generator = g)
    use f = torch.randn ([| n; 16L |], generator = g)
    use bulk = torch.randn ([| n; d |], generator = g)
    use flat = bulk * 0.3f + f.mm factors * 0.5f + 0.5f
    use teacher = torch.randn ([| d; 10L |], generator = g)
    let y = (use logits = flat.mm teacher in logits.argmax 1L)
    flat.reshape (Array.append [| n |] shape), y


/// The solve as it was before issue 10: δ through S⁺ and whitening through S2^{-1/2}, both by eigh.
let private eighSolve (stats: JunctionStatistics) (options: GrowthOptions) =
    let update = Bottleneck.existingWeightsUpdateEigh stats options.EigenCutoff
    use delta = update.Delta
    use n = Bottleneck.projectedN stats delta
    let d = Bottleneck.neuronDirectionsEigh stats.S2 n (Bottleneck.effectiveCutoff options.EigenCutoff stats stats.S2.shape[0])
    d.FanIn.Dispose ()
    d.FanOut.Dispose ()

let private measure (kind: string) (shape: int64[]) (model: ModelOptions) (reps: int) =
    use g = new torch.Generator (7UL)
    use net = Network.Build (Kinds.blockKinds, Kinds.layerKinds, model, shape, 10, torch.CPU, torch.ScalarType.Float32, g)
    let x, y = data shape (statsSamples + heldSamples) 11UL
    use x = x
    use y = y
    let sx, sy = x.narrow (0L, 0L, statsSamples), y.narrow (0L, 0L, statsSamples)
    let hx, hy = x.narrow (0L, statsSamples, heldSamples), y.narrow (0L, statsSamples, heldSamples)
    let options = GrowthOptions ()
    let tiny = TinyStrategy () :> IGrowthStrategy
    let junction = net.Junctions[0]
    // The cache as the engine takes it: once per run, on 4 × StatisticsSamples samples (here the
    // statistics samples repeated: the cost is what matters).
    let bigX, bigY = torch.cat ([| sx; sx; sx; sx |], 0L), torch.cat ([| sy; sy; sy; sy |], 0L)
    let mutable cache = Unchecked.defaultof<InputWhitening.InputCovariance>
    let oneTime = elapsed (fun () -> cache <- InputWhitening.inputCovariance net 0 options null bigX bigY)
    bigX.Dispose ()
    bigY.Dispose ()
    use cache = cache
    let formed () = (StatisticsPass.statisticsFor [| 0 |] options.RowsPerDimension g net sx sy 256L)[0]
    let skipped () = (StatisticsPass.statisticsWith (fun _ -> 0) (fun _ -> cache.S2) 0 [| 0 |] options.RowsPerDimension g net sx sy 256L)[0]
    let request stats whitening = GrowthRequest (stats, junction, 16, options, null, Whitening = whitening)
    let path =
        use stats = formed ()
        let c = Bottleneck.effectiveCutoff options.EigenCutoff stats stats.S2.shape[0]
        use f = LinearAlgebra.psdFactor stats.S2 c
        match f with
        | LinearAlgebra.Cholesky _ -> "cholesky"
        | LinearAlgebra.Eigen w -> $"eigh fallback (rank {w.shape[0]})"
    let runs =
        [ for _ in 1 .. reps ->
            let mutable stats = Unchecked.defaultof<JunctionStatistics>
            let pass = elapsed (fun () -> stats <- formed ())
            use stats = stats
            let eigh = elapsed (fun () -> eighSolve stats options)
            let factor = elapsed (fun () -> (tiny.Propose (request stats null)).Dispose ())
            let cached = elapsed (fun () -> (tiny.Propose (request stats cache.Whitening)).Dispose ())
            let mutable lean = Unchecked.defaultof<JunctionStatistics>
            let leanPass = elapsed (fun () -> lean <- skipped ())
            use lean = lean
            let mutable proposal = Unchecked.defaultof<NeuronProposal>
            let leanSolve = elapsed (fun () -> proposal <- tiny.Propose (request lean cache.Whitening))
            use proposal = proposal
            let search = elapsed (fun () -> LineSearch.lineSearchFrom nan infinity (CandidateLoss.candidateLoss net 0 proposal lean hx hy) 24 |> ignore)
            pass + eigh, pass + factor, pass + cached, leanPass + leanSolve, search ]
    let pick f = median (List.map f runs)
    let row =
        { Kind = kind; D2 = cache.S2.shape[0]; Path = path
          Before = pick (fun (a, _, _, _, _) -> a); Factor = pick (fun (_, b, _, _, _) -> b)
          Cached = pick (fun (_, _, c, _, _) -> c); Skipped = pick (fun (_, _, _, d, _) -> d)
          Search = pick (fun (_, _, _, _, e) -> e); OneTime = oneTime }
    printfn "%-6s D2 %5d  %-24s before %7.3f  factor %7.3f  cached %7.3f  cached+skip %7.3f  search %7.3f  cache once %7.3f s"
            row.Kind row.D2 row.Path row.Before row.Factor row.Cached row.Skipped row.Search row.OneTime
    row

/// Replaces the part of `file` from `marker` to the end (or appends it) by `lines`.
let private replaceSection (file: string) (marker: string) (lines: string list) =
    let existing = if File.Exists file then File.ReadAllLines file |> Array.toList else []
    let kept = existing |> List.takeWhile (fun l -> l <> marker)
    File.WriteAllLines (file, kept @ [ marker ] @ lines)

let private write (rows: Row list) =
    let table =
        [ yield ""
          yield "## One growth step against D2 (`make bench ARGS=step-time`)"
          yield ""
          yield "Statistics pass (4,096 samples, default rows) + the strategy's solve for the junction whose A reads the"
          yield "network's input, seconds, medians of alternated repetitions in one process; the γ search (2,048"
          yield "held-out samples, the same in every state) and the cache's one-time cost beside. States: *before* ="
          yield "S2 formed every step, eigh whitening (before issue 10); *factor* = S2 formed, Cholesky path (eigh"
          yield "fallback when S2 is singular at its rounding level, as real float32 statistics are); *cached* = S2"
          yield "formed, whitening computed once per run; *now* = whitening cached and S2 not formed in the pass."
          yield ""
          yield "| junction | D2 | factor path taken | before (s) | factor (s) | cached (s) | now (s) | now/before | γ search (s) | cache, once per run (s) |"
          yield "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"
          for r in rows do
            yield $"| {r.Kind} | {r.D2} | {r.Path} | %.3f{r.Before} | %.3f{r.Factor} | %.3f{r.Cached} | %.3f{r.Skipped} | %.2f{r.Skipped / r.Before} | %.3f{r.Search} | %.3f{r.OneTime} |"
          yield ""
          yield "![step time against D2](whitening-step-time.png)" ]
    replaceSection "docs/whitening-time.md" "<!-- step-time -->" table
    table |> List.iter (printfn "%s")
    let plot = new ScottPlot.Plot ()
    for kind in rows |> List.map (fun r -> r.Kind) |> List.distinct do
        let rs = rows |> List.filter (fun r -> r.Kind = kind) |> List.sortBy (fun r -> r.D2)
        let xs = rs |> List.map (fun r -> float r.D2) |> Array.ofList
        for name, pick in [ "before", (fun r -> r.Before); "factor", (fun r -> r.Factor); "cached", (fun r -> r.Cached); "now", (fun r -> r.Skipped) ] do
            let s = plot.Add.Scatter (xs, rs |> List.map (fun r -> 1000.0 * pick r) |> Array.ofList)
            s.LegendText <- $"{kind}: {name}"
    plot.Title "Statistics pass + solve of one growth step against D2 (2 CPU threads, shared machine)"
    plot.XLabel "D2 (A's input size)"
    plot.YLabel "milliseconds (median)"
    plot.ShowLegend () |> ignore
    plot.SavePng ("docs/whitening-step-time.png", 900, 500) |> ignore
    printfn "written: docs/whitening-time.md (step-time section), docs/whitening-step-time.png"

let private dense (d2: int64) =
    let spec w = LayerSpec (Kind = "dense", Width = w, MaxWidth = 64, Activation = "tanh")
    "dense", [| d2 - 1L |], ModelOptions (Layers = ResizeArray [ spec 32; spec 32 ])

let private conv (channels: int64) =
    let spec w = LayerSpec (Kind = "conv", Width = w, MaxWidth = 64, Kernel = 3, Stride = 1, Activation = "relu", BatchNorm = true)
    "conv", [| channels; 16L; 16L |], ModelOptions (Layers = ResizeArray [ spec 8; spec 8 ])

/// Dense junctions at D2 ∈ `sizes` (default 65 … 3,073) and conv junctions of C = 8 … 128 channels
/// (`sizes` = ["conv"]: the conv junctions only).
let run (sizes: string list) =
    let convOnly = sizes = [ "conv" ]
    let sizes = if sizes.IsEmpty then [ 65L; 257L; 785L; 1537L; 3073L ] elif convOnly then [] else sizes |> List.map int64
    let reps = 3
    let rows =
        [ for d2 in sizes do
            let kind, shape, model = dense d2
            yield measure kind shape model reps
          for c in [ 8L; 32L; 64L; 128L ] do
            let kind, shape, model = conv c
            yield measure kind shape model reps ]
    write rows
    0

/// The table and plot from the lines `measure` printed (one or more bench outputs), e.g. when the
/// dense and conv junctions were measured by two processes.
let fromOutputs (files: string list) =
    let pattern =
        Text.RegularExpressions.Regex @"^(\w+)\s+D2\s+(\d+)\s+(.+?)\s+before\s+([\d.]+)\s+factor\s+([\d.]+)\s+cached\s+([\d.]+)\s+cached\+skip\s+([\d.]+)\s+search\s+([\d.]+)\s+cache once\s+([\d.]+) s"
    let rows =
        [ for file in files do
            for line in File.ReadLines file do
                let m = pattern.Match line
                if m.Success then
                    let f (i: int) = float m.Groups[i].Value
                    yield { Kind = m.Groups[1].Value; D2 = int64 m.Groups[2].Value; Path = m.Groups[3].Value
                            Before = f 4; Factor = f 5; Cached = f 6; Skipped = f 7; Search = f 8; OneTime = f 9 } ]
    write rows
    0
