/// `make bench ARGS=conv-cost`: what a statistics pass costs next to a training pass over the same
/// samples, per junction kind and width (DESIGN §4.3, §4.5), and `make bench ARGS=rows`: how the
/// proposal (λ, predicted decrease) moves with the number of statistics rows drawn. Inputs are
/// random normal images of the datasets' shapes (the cost does not depend on pixel values); both
/// sides run in one process, alternated, medians reported, so the ratios survive a noisy machine.
module TinyGrow.Bench.ConvCost

open System
open System.Diagnostics
open System.IO
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Growth.Strategies
open TinyGrow.Bench.Measure

let private conv (width: int) (stride: int) =
    LayerSpec (Kind = "conv", Width = width, MaxWidth = 1024, Kernel = 3, Stride = stride, Activation = "relu", BatchNorm = true)

let private dense (width: int) = LayerSpec (Kind = "dense", Width = width, MaxWidth = 1024, Activation = "relu")

/// (case, junction index, input shape, model).
let private cases (c: int) =
    [ $"dense 784→{c}→{c}→10", 0, [| 784L |], ModelOptions (Layers = ResizeArray [ dense c; dense c ])
      $"conv 3×3 s1, 1→{c}→{c} on 28×28", 0, [| 1L; 28L; 28L |], ModelOptions (Layers = ResizeArray [ conv c 1; conv c 1 ])
      $"conv 3×3 s2, 1→{c}→{c} on 28×28", 0, [| 1L; 28L; 28L |], ModelOptions (Layers = ResizeArray [ conv c 1; conv c 2 ])
      $"conv→GAP→dense, {c}→{c}→10 on 28×28", 1, [| 1L; 28L; 28L |], ModelOptions (Layers = ResizeArray [ conv c 1; conv c 1 ]) ]

let private resnetCase = "ResNet-18 at 1/64, block 1 (D2 = 577) on 32×32", 0, [| 3L; 32L; 32L |], ModelOptions (Preset = "resnet18")

/// Seconds of one training pass and of one statistics pass (given rows per dimension) over n samples.
let private measure (name: string, j: int, shape: int64[], model: ModelOptions) (n: int64) (repeats: int) =
    use g = new torch.Generator (1UL)
    use net = Network.Build (Kinds.blockKinds, Kinds.layerKinds, model, shape, 10, torch.CPU, torch.ScalarType.Float32, g)
    use x = torch.randn (Array.append [| n |] shape, generator = g)
    use y = torch.randint (0L, 10L, [| n |], generator = g)
    let optimizer = Sgd ((fun () -> net.Parameters), 0.9, 0.0) :> IOptimizer
    let train () =
        for b in 0L .. 128L .. n - 1L do
            let count = min 128L (n - b)
            Training.trainStep net optimizer 0.001 (x.narrow (0L, b, count)) (y.narrow (0L, b, count)) |> ignore
    let stats rows () =
        let s = StatisticsPass.statisticsFor [| j |] rows g net x y 256L
        s |> Array.iter (fun t -> t.Dispose ())
    train ()
    stats 32 ()
    let runs = [ for _ in 1 .. repeats -> elapsed train, elapsed (stats 32), elapsed (stats 0) ]
    let t = median [ for a, _, _ in runs -> a ]
    let ratio = median [ for a, b, _ in runs -> b / a ]
    let ratioAll = median [ for a, _, c in runs -> c / a ]
    name, net.Junctions[j].RowSize, t, ratio, ratioAll

/// `conv-cost [N]`: the table, into docs/conv-cost.md.
let costTable (n: int64) =
    let rows =
        [ for c in [ 8; 16 ] do
            for case in cases c do
                let r = measure case n 3
                let name, d, t, ratio, all = r
                printfn "%-40s D=%5d  train %.3f s  stats/train %.2f  (all rows %.2f)" name d t ratio all
                yield r
          let r = measure resnetCase (n / 4L) 3
          let name, d, t, ratio, all = r
          printfn "%-40s D=%5d  train %.3f s  stats/train %.2f  (all rows %.2f)" name d t ratio all
          yield r ]
    let commit =
        try
            match Process.Start (ProcessStartInfo ("git", "rev-parse --short HEAD", RedirectStandardOutput = true)) with
            | null -> "?"
            | p -> p.StandardOutput.ReadToEnd().Trim ()
        with _ -> "?"
    let lines =
        [ yield $"Statistics pass / training pass over the same samples ({n} samples; ResNet {n / 4L}), one junction, "
          yield $"RowsPerDimension = 32 (the default) and every row; medians of 3 alternated runs. {Environment.ProcessorCount} cores, commit {commit}, `make bench ARGS=\"conv-cost {n}\"`."
          yield ""
          yield "| junction | max(D1, D2) | training pass (s) | statistics / training (default rows) | statistics / training (all rows) |"
          yield "|---|---:|---:|---:|---:|"
          for name, d, t, ratio, all in rows -> $"| {name} | {d} | %.3f{t} | %.2f{ratio} | %.2f{all} |" ]
    Directory.CreateDirectory "docs" |> ignore
    File.WriteAllLines ("docs/conv-cost.md", lines)
    printfn "wrote docs/conv-cost.md"

/// `rows`: λ_1..3 and the predicted decrease of a conv junction's tiny proposal against the rows
/// drawn per dimension, 5 draws each, relative to the proposal from every row; on the first 2,048
/// Fashion-MNIST training images (real signal: random labels would give a bottleneck that is all
/// noise, and the drawn rows' noise floor, λ² ∝ D/rows, would be all there is to see).
let rowsTable () =
    let shape = [| 1L; 28L; 28L |]
    use g = new torch.Generator (2UL)
    use net = Network.Build (Kinds.blockKinds, Kinds.layerKinds, ModelOptions (Layers = ResizeArray [ conv 8 1; conv 8 1 ]), shape, 10, torch.CPU, torch.ScalarType.Float32, g)
    let n = 2048L
    use downloader = new TinyGrow.Datasets.Downloads.DatasetDownloader (Microsoft.Extensions.Logging.Abstractions.NullLogger<TinyGrow.Datasets.Downloads.DatasetDownloader>.Instance)
    use data = (TinyGrow.Datasets.Mnist.MnistDatasetProvider downloader :> IDatasetProvider).Load ("fashion-mnist", DatasetOptions (Root = "data"), torch.CPU, Threading.CancellationToken.None)
    use x = data.Pipeline.Inputs (data.Train.Samples.narrow (0L, 0L, n))
    use y = data.Train.Labels.narrow (0L, 0L, n)
    let tiny = TinyStrategy () :> IGrowthStrategy
    let options = GrowthOptions (RelativeThreshold = 0.0)
    let proposal rows (seed: uint64) =
        use gen = new torch.Generator (seed)
        let stats = (StatisticsPass.statisticsFor [| 0 |] rows gen net x y 256L)[0]
        use p = tiny.Propose (GrowthRequest (stats, net.Junctions[0], 8, options, null))
        let lambdas = p.NeuronScores |> Array.map sqrt
        stats.Dispose ()
        lambdas, p.PredictedDecrease 1.0
    let lines =
        [ yield $"Conv 3×3 junction 1→8→8 (BN, ReLU) at initialisation, the first {n} Fashion-MNIST images ({n * 784L} (sample, position) rows, D = 72):"
          yield "tiny's λ_1..3, neurons kept (K) and predicted decrease from the rows drawn (mean ± std over 5 draws), and from every row. `make bench ARGS=rows`."
          yield ""
          yield "| rows per dimension | rows drawn | λ1 | λ2 | λ3 | K | predicted decrease |"
          yield "|---:|---:|---:|---:|---:|---:|---:|"
          for r in [ 2; 4; 8; 16; 32; 64; 128; 0 ] do
              let draws = [ for s in 1 .. (if r = 0 then 1 else 5) -> proposal r (uint64 (10 + s)) ]
              let stat (f: float[] * float -> float) =
                  let v = draws |> List.map f
                  let m = List.average v
                  m, sqrt (List.averageBy (fun a -> (a - m) ** 2.0) v)
              let lambda k (l: float[], _) = if l.Length > k then l[k] else 0.0
              let cell (m, s) = $"%.3g{m} ± %.2g{s}"
              let label, drawn = if r = 0 then "all", n * 784L else string r, int64 r * 72L
              yield $"| {label} | {drawn} | {cell (stat (lambda 0))} | {cell (stat (lambda 1))} | {cell (stat (lambda 2))} | {cell (stat (fun (l, _) -> float l.Length))} | {cell (stat snd)} |" ]
    for l in lines do printfn "%s" l
    File.WriteAllLines ("docs/conv-rows.md", lines)
    printfn "wrote docs/conv-rows.md"

/// `stats-profile`: where one statistics batch's time goes for a two-conv CNN (forward, gradient,
/// rows, sums), per junction; 5 repetitions, medians.
let statsProfile () =
    let shape = [| 1L; 28L; 28L |]
    use g = new torch.Generator (3UL)
    use net = Network.Build (Kinds.blockKinds, Kinds.layerKinds, ModelOptions (Layers = ResizeArray [ conv 8 1; conv 8 1 ]), shape, 10, torch.CPU, torch.ScalarType.Float32, g)
    use x = torch.randn ([| 256L; 1L; 28L; 28L |], generator = g)
    use y = torch.randint (0L, 10L, [| 256L |], generator = g)
    let optimizer = Sgd ((fun () -> net.Parameters), 0.9, 0.0) :> IOptimizer
    let parts = Collections.Generic.Dictionary<string, ResizeArray<float>> ()
    let add k v = (match parts.TryGetValue k with | true, l -> l | _ -> (let l = ResizeArray () in parts[k] <- l; l)).Add v
    for _ in 1 .. 5 do
        add "train step (256)" (elapsed (fun () -> Training.trainStep net optimizer 0.001 x y |> ignore))
        use scope = torch.NewDisposeScope ()
        let sw = Stopwatch.StartNew ()
        let logits, records = net.ForwardRecording x
        let loss = torch.nn.functional.cross_entropy (logits, y, reduction = torch.nn.Reduction.Sum)
        add "recording forward" sw.Elapsed.TotalSeconds
        for j in 0 .. 1 do
            sw.Restart ()
            let grad = (torch.autograd.grad ([| loss |], [| records[j].BOutput |], retain_graph = true))[0]
            add $"gradient j{j}" sw.Elapsed.TotalSeconds
            sw.Restart ()
            use rows = net.Junctions[j].Rows (records[j], grad, StatisticsPass.rowsPerBatch 32 net.Junctions[j] 256L 1024L, g)
            add $"rows j{j} ({rows.B.shape[0]} rows)" sw.Elapsed.TotalSeconds
            sw.Restart ()
            let acc = Statistics.JunctionAccumulator ()
            acc.Add rows
            use s = acc.Finish ()
            add $"sums j{j}" sw.Elapsed.TotalSeconds
    for kv in parts do printfn "%-28s %8.4f s" kv.Key (median (List.ofSeq kv.Value))

/// `ops-profile`: the primitive operations the conv rows use, timed alone.
let opsProfile () =
    use g = new torch.Generator (4UL)
    use x = torch.randn ([| 256L; 8L; 28L; 28L |], generator = g)
    let t name f = printfn "%-36s %8.4f s" name (median [ for _ in 1 .. 5 -> elapsed f ])
    t "unfold [256,8,28,28] k3" (fun () -> use u = torch.nn.functional.unfold (x, 3L, 1L, 1L, 1L) in ())
    t "unfold + mean" (fun () -> use u = torch.nn.functional.unfold (x, 3L, 1L, 1L, 1L) in use m = u.mean ([| 2L |]) in ())
    t "meanPatch" (fun () -> use m = TinyGrow.Growth.Conv.ConvRows.meanPatch x 3 1 1 1 in ())
    t "randperm 200704" (fun () -> use p = torch.randperm (200704L, generator = g) in ())
    use idx = torch.randint (0L, 200704L, [| 576L |], generator = g)
    let s, oh, ow = idx.floor_divide (784L.ToScalar ()), (idx.remainder (784L.ToScalar ())).floor_divide (28L.ToScalar ()), idx.remainder (28L.ToScalar ())
    t "patches 576 rows" (fun () -> use p = TinyGrow.Growth.Conv.ConvRows.patches x 3 1 1 1 s oh ow in ())
    use idx2 = torch.randint (0L, 200704L, [| 9216L |], generator = g)
    let s2, oh2, ow2 = idx2.floor_divide (784L.ToScalar ()), (idx2.remainder (784L.ToScalar ())).floor_divide (28L.ToScalar ()), idx2.remainder (28L.ToScalar ())
    t "patches 9216 rows" (fun () -> use p = TinyGrow.Growth.Conv.ConvRows.patches x 3 1 1 1 s2 oh2 ow2 in ())
    t "conv2d 8→8 k3 forward" (fun () -> use w = torch.randn ([| 8L; 8L; 3L; 3L |]) in use z = torch.nn.functional.conv2d (x, w, null, [| 1L; 1L |], [| 1L; 1L |], [| 1L; 1L |]) in ())
