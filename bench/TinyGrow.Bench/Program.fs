module TinyGrow.Bench.Program

open System
open System.Collections.Generic
open System.Diagnostics
open System.IO
open Microsoft.Extensions.Logging.Abstractions
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Growth.Linear
open TinyGrow.Growth.Strategies
open TinyGrow.Datasets.Mnist

let kinds = Dictionary<string, ILayerKind> (dict [ "dense", DenseKind () :> ILayerKind ]) :> IReadOnlyDictionary<_, _>

let loadFashion () =
    (MnistDatasetProvider () :> IDatasetProvider).Load ("fashion-mnist", DatasetOptions (Root = "data"), torch.CPU)

let model (widths: int list) (activation: string) =
    ModelOptions (Layers = ResizeArray [ for w in widths -> LayerSpec (Kind = "dense", Width = w, MaxWidth = 256, Activation = activation) ])

[<EntryPoint>]
let main argv =
    match argv |> Array.toList with
    | [ "smoke"; activation; epochs; threshold; steps ] ->
        use data = loadFashion ()
        let dir = Path.Combine (Path.GetTempPath (), "tinygrow-smoke")
        Directory.CreateDirectory dir |> ignore
        let engine = GrowthEngine (kinds, TinyStrategy (), NullLogger.Instance)
        let s = engine.Run (data, model [ 1; 1 ] activation, TrainingOptions (Epochs = int epochs), GrowthOptions (RelativeThreshold = float threshold, StepsPerEpoch = int steps), torch.CPU, dir, Threading.CancellationToken.None)
        printfn "%A" s
        for l in File.ReadLines (Path.Combine (dir, "metrics.jsonl")) do
            if l.Contains "epoch\":" && not (l.Contains "\"added\":0") then printfn "%s" l
        0
    | "compare" :: rest ->
        // The default experiment's growth next to a fixed network of the grown widths, same epochs,
        // same seed, same process: accuracy, parameters, seconds.
        // Defaults: the default experiment (src/Host/appsettings.json); or ACTIVATION EPOCHS.
        let activation, epochs =
            match rest with
            | [ a; e ] -> a, int e
            | _ -> "tanh", 10
        use data = loadFashion ()
        let run (strategy: IGrowthStrategy) (widths: int list) =
            let dir = Directory.CreateTempSubdirectory("tinygrow-compare-").FullName
            let engine = GrowthEngine (kinds, strategy, NullLogger.Instance)
            let growth = GrowthOptions ()
            engine.Run (data, model widths activation, TrainingOptions (Epochs = epochs), growth, torch.CPU, dir, Threading.CancellationToken.None)
        let grown = run (TinyStrategy ()) [ 1; 1 ]
        let fixedNet = run (Unchecked.defaultof<IGrowthStrategy>) (List.ofArray grown.Widths)
        printfn "| network | widths | test accuracy | parameters | seconds | growth seconds |"
        printfn "|---|---|---|---|---|---|"
        let row name (s: RunSummary) =
            printfn "| %s | %s | %.2f %% | %d | %.1f | %.1f |" name (String.Join ("/", s.Widths)) (100.0 * s.TestAccuracy) s.Parameters s.Seconds s.GrowthSeconds
        row "grown from 1/1 (tiny)" grown
        row "fixed at the grown widths" fixedNet
        printfn "time ratio grown/fixed: %.2f" (grown.Seconds / fixedNet.Seconds)
        0
    | [ "step-profile" ] ->
        use data = loadFashion ()
        use generator = new torch.Generator (1UL)
        use net = Network.Build (kinds, model [ 128; 128 ] "tanh", data.InputShape, data.Classes, torch.CPU, torch.ScalarType.Float32, generator)
        let x, y = data.Train.Inputs.narrow (0L, 0L, 4096L), data.Train.Labels.narrow (0L, 0L, 4096L)
        let hx, hy = data.Train.Inputs.narrow (0L, 4096L, 2048L), data.Train.Labels.narrow (0L, 4096L, 2048L)
        let time name f =
            let sw = Stopwatch.StartNew ()
            let r = f ()
            printfn "%-28s %8.3f s" name sw.Elapsed.TotalSeconds
            r
        for _ in 1 .. 2 do
            let stats = time "statistics pass 4096" (fun () -> Growth.statisticsPass net x y 1024L)
            let strategy = TinyStrategy () :> IGrowthStrategy
            let proposals = time "proposals" (fun () -> [ for j in 0 .. 1 -> strategy.Propose (GrowthRequest (stats[j], net.Layers[j], net.Layers[j + 1], 16, GrowthOptions (), generator)) ])
            time "loss 2048" (fun () -> Training.meanLoss net hx hy) |> ignore
            time "candidate loss" (fun () -> Growth.candidateLoss net 0 proposals[0] hx hy 1.0) |> ignore
            let events = time "grow junction 0 (γ search)" (fun () -> Growth.growJunction net 0 proposals[0] hx hy)
            printfn "  %A" events
        0
    | [ "stats-ratio" ] | [ "stats-ratio"; _ ] ->
        // Cost of the statistics pass and of the solves, as ratios of one plain training epoch over
        // the same samples, at the default experiment's largest widths. Both sides run in this process.
        let width = if argv.Length > 1 then int argv[1] else 256
        use data = loadFashion ()
        use generator = new torch.Generator (1UL)
        use net = Network.Build (kinds, model [ width; width ] "selu", data.InputShape, data.Classes, torch.CPU, torch.ScalarType.Float32, generator)
        let optimizer = Sgd ((fun () -> net.Parameters), 0.9, 0.0) :> IOptimizer
        let n = data.Train.Count
        let time f = let sw = Stopwatch.StartNew () in f (); sw.Elapsed.TotalSeconds
        let epoch () =
            use order = torch.randperm (n, generator = generator)
            for b in 0L .. 128L .. n - 1L do
                use scope = torch.NewDisposeScope ()
                let x, y = Training.batch data.Train order b (min 128L (n - b))
                Training.trainStep net optimizer 0.01 x y |> ignore
        epoch () // warm-up
        let train = time epoch
        let mutable stats: JunctionStatistics[] = [||]
        let pass = time (fun () -> stats <- Growth.statisticsPass net data.Train.Inputs data.Train.Labels 1024L)
        let strategy = TinyStrategy () :> IGrowthStrategy
        let solve =
            time (fun () ->
                for j in 0 .. net.JunctionCount - 1 do
                    use p = strategy.Propose (GrowthRequest (stats[j], net.Layers[j], net.Layers[j + 1], 16, GrowthOptions (), generator))
                    ())
        printfn "widths %d/%d, %d samples" width width n
        printfn "training epoch (batch 128): %8.2f s" train
        printfn "statistics pass (all junctions, batch 1024): %8.2f s  ratio %.2f" pass (pass / train)
        printfn "solves (δ, N, S2^-1/2, SVD; %d junctions): %8.3f s  ratio %.3f" net.JunctionCount solve (solve / train)
        0
    | _ ->
        eprintfn "usage: TinyGrow.Bench compare [ACTIVATION EPOCHS] | stats-ratio [WIDTH] | step-profile | smoke ACTIVATION EPOCHS THRESHOLD STEPS"
        2
