/// `conv-modes [EPOCHS] [SEEDS]`: restricted vs full fan-out (DESIGN §4.3) on the Fashion-MNIST CNN
/// of experiments/fashion-mnist-cnn.json. Part 1: one growth step per conv junction after the same
/// warm-up training (same seed, so both modes start from identical weights): statistics seconds
/// next to a training pass over the same samples, neurons kept, λ1, predicted and measured decrease
/// at the chosen γ, measured decrease per 1,000 parameters added. Part 2: whole runs of the
/// experiment in each mode, seeds interleaved. Writes docs/conv-modes.md.
module TinyGrow.Bench.ConvModes

open System
open System.Diagnostics
open System.IO
open Microsoft.Extensions.Logging.Abstractions
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Growth.Strategies
open TinyGrow.Bench.Measure

/// The layers of experiments/fashion-mnist-cnn.json.
let private layers () =
    let conv width maxWidth stride =
        LayerSpec (Kind = "conv", Width = width, MaxWidth = maxWidth, Kernel = 3, Stride = stride, Activation = "relu", BatchNorm = true)
    ResizeArray [ conv 2 16 1; conv 2 16 2; conv 2 32 1; conv 2 32 2
                  LayerSpec (Kind = "dense", Width = 1, MaxWidth = 64, Activation = "relu", Bias = true) ]

let private model (mode: string) = ModelOptions (Layers = layers (), Head = "gap", ConvFanOut = mode)

/// The experiment's growth options.
let private growth () =
    GrowthOptions (Strategy = "tiny", StepsPerEpoch = 4, UntilEpoch = 2, NeuronsPerStep = 8, StatisticsSamples = 2048, GammaSearchSamples = 1024)


/// One growth step of junction j after `warm` SGD batches, in `mode`.
let private step (data: LoadedDataset) (mode: string) (j: int) (warm: int) =
    use g = new torch.Generator (1UL)
    use net = Network.Build (Kinds.blockKinds, Kinds.layerKinds, model mode, data.InputShape, data.Classes, torch.CPU, torch.ScalarType.Float32, g)
    let optimizer = Sgd ((fun () -> net.Parameters), 0.9, 0.0) :> IOptimizer
    use inputs = data.Pipeline.Inputs (data.Train.Samples.narrow (0L, 0L, int64 (warm * 128 + 3072)))
    let mutable last = 0.0
    for b in 0 .. warm - 1 do
        last <- Training.trainStep net optimizer 0.05 (inputs.narrow (0L, int64 (b * 128), 128L)) (data.Train.Labels.narrow (0L, int64 (b * 128), 128L))
    let at = int64 (warm * 128)
    let x, y = inputs.narrow (0L, at, 2048L), data.Train.Labels.narrow (0L, at, 2048L)
    let hx, hy = inputs.narrow (0L, at + 2048L, 1024L), data.Train.Labels.narrow (0L, at + 2048L, 1024L)
    // A training pass (forward + backward, no update) over the same 2,048 samples, for the ratio.
    let _, trainSeconds =
        timed (fun () ->
            for b in 0L .. 15L do
                let logits = net.Forward (x.narrow (0L, b * 128L, 128L), ForwardPass.Probe)
                use loss = torch.nn.functional.cross_entropy (logits, y.narrow (0L, b * 128L, 128L))
                loss.backward ()
            for p in net.Parameters do p.grad <- null)
    let options = growth ()
    use rows = new torch.Generator (2UL)
    let stats, statsSeconds = timed (fun () -> (StatisticsPass.statisticsFor [| j |] options.RowsPerDimension rows net x y 256L)[0])
    use stats = stats
    use proposal = (TinyStrategy () :> IGrowthStrategy).Propose (GrowthRequest (stats, net.Junctions[j], options.NeuronsPerStep, options, rows))
    let lambda1 = if proposal.NeuronScores.Length > 0 then sqrt proposal.NeuronScores[0] else 0.0
    let event = GammaSearch.growJunction net j proposal stats hx hy
    let parameters = float event.Added * float net.Junctions[j].ParametersPerNeuron
    {| Junction = net.Junctions[j].Name; WarmLoss = last; StatsRatio = statsSeconds / trainSeconds; Kept = event.Added; Lambda1 = lambda1
       Gamma = event.Gamma; Predicted = event.PredictedDecrease; Measured = event.MeasuredDecrease
       PerThousand = (if parameters > 0.0 then 1000.0 * event.MeasuredDecrease / parameters else 0.0) |}


let run (data: LoadedDataset) (epochs: int) (seeds: int list) =
    let commit =
        try
            match Process.Start (ProcessStartInfo ("git", "rev-parse --short HEAD", RedirectStandardOutput = true)) with
            | null -> "?"
            | p -> p.StandardOutput.ReadToEnd().Trim ()
        with _ -> "?"
    let lines = ResizeArray<string> ()
    let say (s: string) = printfn "%s" s; lines.Add s
    say "# Conv fan-out modes: restricted vs full (DESIGN §4.3)"
    say ""
    let seedList = String.Join (" ", seeds)
    let load = File.ReadAllText("/proc/loadavg").Split(' ')[0]
    say $"`make bench ARGS=\"conv-modes {epochs} {seedList}\"`, commit {commit}, {Environment.ProcessorCount} CPU threads, load average at start {load} (a shared machine: seconds are inflated, ratios within one row are fair)."
    say ""
    say "## One growth step per junction (Fashion-MNIST CNN of experiments/fashion-mnist-cnn.json, after 100 SGD batches, identical weights in both modes)"
    say ""
    say "| junction | mode | statistics / training pass | neurons kept | λ1 | γ | predicted decrease | measured decrease | measured per 1,000 parameters |"
    say "|---|---|---:|---:|---:|---:|---:|---:|---:|"
    for j in 0 .. 2 do
        for mode in [ "restricted"; "full" ] do
            let r = step data mode j 100
            eprintfn "warm-up loss %s j%d: %.9f" mode j r.WarmLoss
            say $"| {r.Junction} | {mode} | %.2f{r.StatsRatio} | {r.Kept} | %.3g{r.Lambda1} | %.3g{r.Gamma} | %.4g{r.Predicted} | %.4g{r.Measured} | %.3g{r.PerThousand} |"
    say ""
    say $"## Whole runs ({epochs} epochs, growth as in the experiment), seeds {seedList}"
    say ""
    let once (mode: string) (seed: int) =
        let dir = Directory.CreateTempSubdirectory("tinygrow-conv-modes-").FullName
        try
            use engine = new GrowthEngine (Kinds.blockKinds, Kinds.layerKinds, TinyStrategy (), NullLogger.Instance)
            let s = engine.Run (data, model mode, TrainingOptions (Epochs = epochs, BatchSize = 128, LearningRate = 0.05, Seed = int64 seed),
                                growth (), torch.CPU, dir, Threading.CancellationToken.None)
            eprintfn "%s seed %d: %.4f %s %d params %.0f s (growth %.0f s)" mode seed s.TestAccuracy (String.Join ("/", s.Widths)) s.Parameters s.Seconds s.GrowthSeconds
            s
        finally Directory.Delete (dir, true)
    let results = [ for seed in seeds do for mode in [ "restricted"; "full" ] -> mode, once mode seed ]
    say "| mode | test accuracy | widths (seed by seed) | parameters | seconds | growth seconds |"
    say "|---|---:|---|---:|---:|---:|"
    for mode in [ "restricted"; "full" ] do
        let rs = results |> List.filter (fst >> (=) mode) |> List.map snd
        let acc, accS = meanStd [ for r in rs -> 100.0 * r.TestAccuracy ]
        let par, _ = meanStd [ for r in rs -> float r.Parameters ]
        let sec, secS = meanStd [ for r in rs -> r.Seconds ]
        let gro, _ = meanStd [ for r in rs -> r.GrowthSeconds ]
        let widths = String.Join ("; ", [ for r in rs -> String.Join ("/", r.Widths) ])
        say $"| {mode} | %.2f{acc} ± %.2f{accS} %% | {widths} | %.0f{par} | %.0f{sec} ± %.0f{secS} | %.0f{gro} |"
    Directory.CreateDirectory "docs" |> ignore
    File.WriteAllLines ("docs/conv-modes.md", lines)
    printfn "wrote docs/conv-modes.md"
