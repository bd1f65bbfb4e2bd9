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
open TinyGrow.Bench.Measure

let kinds = Kinds.layerKinds
let blockKinds = Kinds.blockKinds

let loadFashion () =
    use downloader = new TinyGrow.Datasets.Downloads.DatasetDownloader (NullLogger<TinyGrow.Datasets.Downloads.DatasetDownloader>.Instance)
    (MnistDatasetProvider downloader :> IDatasetProvider).Load ("fashion-mnist", DatasetOptions (Root = "data"), torch.CPU, Threading.CancellationToken.None)

/// Fashion-MNIST with the given dataset options, cut to their TrainSamples / TestSamples as a run cuts it
/// (the provider reads every sample; before this cut, claim-resnet's "subset" rows trained on all 60,000).
let loadFashionWith (options: DatasetOptions) =
    use downloader = new TinyGrow.Datasets.Downloads.DatasetDownloader (NullLogger<TinyGrow.Datasets.Downloads.DatasetDownloader>.Instance)
    (MnistDatasetProvider downloader :> IDatasetProvider).Load("fashion-mnist", options, torch.CPU, Threading.CancellationToken.None).WithLimits options

/// Training samples of `claim-resnet`'s rows: ResNet-20 at full width trains about 10× slower than the CNN per sample.
let claimResNetTrainSamples = 6000

let model (widths: int list) (activation: string) =
    ModelOptions (Layers = ResizeArray [ for w in widths -> LayerSpec (Kind = "dense", Width = w, MaxWidth = 256, Activation = activation) ])

/// Where the comparison modes write their tables (each into its own section).
let results = "docs/results.md"

/// `[EPOCHS [SEED ...]]`, default seeds 1 2 3.
let epochsAndSeeds (args: string list) (defaultEpochs: int) =
    match args with
    | [] -> defaultEpochs, [ 1; 2; 3 ]
    | e :: seeds -> int e, (if seeds.IsEmpty then [ 1; 2; 3 ] else List.map int seeds)


[<EntryPoint>]
let main argv =
    match argv |> Array.toList with
    | [ "smoke"; activation; epochs; threshold; steps ] ->
        use data = loadFashion ()
        let dir = Path.Combine (Path.GetTempPath (), "tinygrow-smoke")
        Directory.CreateDirectory dir |> ignore
        use engine = new GrowthEngine (blockKinds, kinds, TinyStrategy (), NullLogger.Instance)
        let s = engine.Run (data, model [ 1; 1 ] activation, TrainingOptions (Epochs = int epochs), GrowthOptions (RelativeThreshold = float threshold, StepsPerEpoch = int steps), torch.CPU, dir, Threading.CancellationToken.None)
        printfn "%A" s
        for l in File.ReadLines (Path.Combine (dir, "metrics.jsonl")) do
            // Epoch lines, and the growth lines that added neurons.
            if l.Contains "\"event\":\"epoch\"" || (l.Contains "\"event\":\"growth\"" && not (l.Contains "\"added\":0,")) then printfn "%s" l
        0
    | [ "readme-figure"; runFolder; output ] ->
        // The README's picture from a finished run folder (scripts/readme-figure.sh makes the run).
        TinyGrow.Host.Reports.RunReport.WriteWidthsAndAccuracy (runFolder, output)
        printfn "wrote %s" output
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
        let run (strategy: IGrowthStrategy | null) (widths: int list) =
            let dir = Directory.CreateTempSubdirectory("tinygrow-compare-").FullName
            use engine = new GrowthEngine (blockKinds, kinds, strategy, NullLogger.Instance)
            let growth = GrowthOptions ()
            let summary = engine.Run (data, model widths activation, TrainingOptions (Epochs = epochs), growth, torch.CPU, dir, Threading.CancellationToken.None)
            summary, dir
        // Same seed, so each repetition gives the same networks and accuracies; only the seconds vary
        // (a shared, noisy machine): 3 alternated repetitions, medians.
        let runs =
            [ for _ in 1 .. 3 ->
                let grown, grownDir = run (TinyStrategy ()) [ 1; 1 ]
                let fixedNet, fixedDir = run null (List.ofArray grown.Widths)
                (grown, fixedNet), (grownDir, fixedDir) ]
        let pairs = runs |> List.map fst
        let grownDir, fixedDir = snd runs.Head
        Directory.CreateDirectory "docs" |> ignore
        Plots.accuracyAndSize "docs/compare" "Fashion-MNIST: grown from 1/1 (tiny) vs fixed at the grown widths"
            [ "grown from 1/1", grownDir; "fixed", fixedDir ]
        printfn "figures: docs/compare-accuracy.png, docs/compare-parameters.png"
        let grown, fixedNet = pairs.Head
        let seconds pick = median [ for p in pairs -> (pick p: RunSummary).Seconds ]
        let growthSeconds = median [ for g, _ in pairs -> g.GrowthSeconds ]
        printfn "| network | widths | test accuracy | parameters | seconds (median of 3) | growth seconds |"
        printfn "|---|---|---|---|---|---|"
        let row name (s: RunSummary) secs growth =
            printfn "| %s | %s | %.2f %% | %d | %.1f | %.1f |" name (String.Join ("/", s.Widths)) (100.0 * s.TestAccuracy) s.Parameters secs growth
        row "grown from 1/1 (tiny)" grown (seconds fst) growthSeconds
        row "fixed at the grown widths" fixedNet (seconds snd) 0.0
        printfn "time ratio grown/fixed (median of the 3 ratios): %.2f; growth share of the grown run: %.0f %%"
            (median [ for g, f in pairs -> g.Seconds / f.Seconds ]) (100.0 * growthSeconds / seconds fst)
        0
    | "strategies" :: rest ->
        // tiny grown from 1/1, gradmax and random grown to tiny's widths, the fixed network of
        // tiny's widths: EPOCHS (default 10, the default experiment) and SEEDS (default 1 2 3).
        let epochs, seeds = epochsAndSeeds rest 10
        use data = loadFashion ()
        Strategies.run data (model [ 1; 1 ] "tanh") epochs seeds results
        0
    | "protocol" :: rest ->
        // The Python reference's protocol (Adam, 20 epochs): its schedule and the front-loaded one.
        let epochs, seeds = epochsAndSeeds rest 20
        use data = loadFashion ()
        Protocol.run data (model [ 1; 1 ] "tanh") epochs seeds results
        0
    | "cnn" :: rest ->
        // experiments/fashion-mnist-cnn.json grown vs fixed at its widths: EPOCHS (default: the file's).
        let epochs, seeds = epochsAndSeeds rest 0
        use data = loadFashion ()
        CnnComparison.run data "experiments/fashion-mnist-cnn.json" (if epochs > 0 then Some epochs else None) seeds results
        0
    | "claim-cnn" :: rest ->
        // Issue 20's claim on experiments/fashion-mnist-cnn.json: grown, fixed at the caps, fixed at the
        // grown widths, random to them. EPOCHS (default: the file's), seeds (default 1 2 3).
        let epochs, seeds = epochsAndSeeds rest 0
        ClaimComparison.run loadFashionWith "experiments/fashion-mnist-cnn.json" "claim-cnn" (if epochs > 0 then Some epochs else None) 0 seeds results
        0
    | "growth-cost" :: seeds ->
        // Issue 23: the default run and CIFAR-dense on two generated file sets, input statistics cache cold and warm.
        GrowthCost.run (if seeds.IsEmpty then [ 1; 2; 3 ] else List.map int seeds) results
        0
    | "claim-resnet" :: rest ->
        // The same rows for experiments/fashion-mnist-resnet20.json, on a training subset (time).
        let epochs, seeds = epochsAndSeeds rest 0
        ClaimComparison.run loadFashionWith "experiments/fashion-mnist-resnet20.json" "claim-resnet" (if epochs > 0 then Some epochs else None)
                            claimResNetTrainSamples seeds results
        0
    | "whitening-time" :: sizes ->
        // One proposal's solves against D2, eigh path vs factor path (docs/whitening-time.md, .png).
        let sizes = if sizes.IsEmpty then [ 577L; 785L; 3073L ] else sizes |> List.map int64
        let fashion () =
            let data = loadFashion ()
            Some (fun dtype -> TinyGrow.Bench.WhiteningTime.fashionStats data kinds dtype)
        TinyGrow.Bench.WhiteningTime.run sizes fashion
    | "whitening-precision" :: sizes ->
        // The kept input whitening factorised in float32 vs float64 (docs/notebook/2026-11-30-statistics-from-training.md).
        TinyGrow.Bench.WhiteningTime.precision (if sizes.IsEmpty then [ 785L; 1537L; 3073L ] else sizes |> List.map int64) 3
        0
    | [ "whitening-parts" ] ->
        let data = loadFashion ()
        for dtype in [ torch.ScalarType.Float32; torch.ScalarType.Float64 ] do
            use stats = TinyGrow.Bench.WhiteningTime.fashionStats data kinds dtype
            printfn "Fashion-MNIST input junction, %A rows" dtype
            TinyGrow.Bench.WhiteningTime.parts stats
        0
    | [ "checkpoint-cost" ] ->
        TinyGrow.Bench.CheckpointCost.run "resnet18" 1.0
        0
    | "queue" :: rest ->
        match rest with
        | [] -> QueueBench.queue 300 QueueBench.defaultServer
        | [ jobs ] -> QueueBench.queue (int jobs) QueueBench.defaultServer
        | jobs :: server :: _ -> QueueBench.queue (int jobs) server
    | "daemon-idle" :: rest ->
        QueueBench.daemonIdle (match rest with s :: _ -> float s | [] -> 60.0) QueueBench.defaultServer
    | [ "cifar-pipeline" ] -> TinyGrow.Bench.CifarPipeline.run ()
    | "step-time" :: sizes -> TinyGrow.Bench.StepTime.run sizes
    | "step-time-from" :: files -> TinyGrow.Bench.StepTime.fromOutputs files
    | [ "step-profile" ] ->
        use data = loadFashion ()
        use generator = new torch.Generator (1UL)
        use net = Network.Build (blockKinds, kinds, model [ 128; 128 ] "tanh", data.InputShape, data.Classes, torch.CPU, torch.ScalarType.Float32, generator)
        use trainX = data.Pipeline.Inputs data.Train.Samples
        let x, y = trainX.narrow (0L, 0L, 4096L), data.Train.Labels.narrow (0L, 0L, 4096L)
        let hx, hy = trainX.narrow (0L, 4096L, 2048L), data.Train.Labels.narrow (0L, 4096L, 2048L)
        let time name f =
            let sw = Stopwatch.StartNew ()
            let r = f ()
            printfn "%-28s %8.3f s" name sw.Elapsed.TotalSeconds
            r
        for _ in 1 .. 2 do
            let stats = time "statistics pass 4096" (fun () -> StatisticsPass.statisticsPass net x y 1024L)
            let strategy = TinyStrategy () :> IGrowthStrategy
            let proposals = time "proposals" (fun () -> [ for j in 0 .. 1 -> strategy.Propose (GrowthRequest (stats[j], net.Junctions[j], 16, GrowthOptions (), generator)) ])
            time "loss 2048" (fun () -> Training.meanLoss net hx hy) |> ignore
            time "candidate loss" (fun () -> CandidateLoss.candidateLoss net 0 proposals[0] stats[0] hx hy 1.0) |> ignore
            let events = time "grow junction 0 (γ search)" (fun () -> GammaSearch.growJunction net 0 proposals[0] stats[0] hx hy)
            printfn "  %A" events
        0
    | [ "conv-cost" ] -> ConvCost.costTable 1024L; 0
    | [ "conv-cost"; n ] -> ConvCost.costTable (int64 n); 0
    | [ "rows" ] -> ConvCost.rowsTable (); 0
    | "conv-modes" :: rest ->
        // Restricted vs full conv fan-out: EPOCHS (default 5, the experiment's) and SEEDS (default 1).
        let epochs, seeds =
            match rest with
            | [] -> 5, [ 1 ]
            | e :: seeds -> int e, (if seeds.IsEmpty then [ 1 ] else List.map int seeds)
        use data = loadFashion ()
        TinyGrow.Bench.ConvModes.run data epochs seeds
        0
    | "fuzz-readers" :: rest ->
        // The suite's corruption properties (tests/TinyGrow.Datasets.Tests/ReaderFuzz.fs) with more
        // cases and a fresh seed (printed, to replay a failure).
        let cases, seed =
            match rest with
            | [ n; s ] -> int n, uint64 s
            | [ n ] -> int n, uint64 DateTime.UtcNow.Ticks
            | _ -> 20_000, uint64 DateTime.UtcNow.Ticks
        printfn "seed %d, %d cases per target" seed cases
        printfn "| target | cases | original data | other data the bytes hold | refused (DatasetException naming the file) | seconds |"
        printfn "|---|---|---|---|---|---|"
        for name, property in TinyGrow.Datasets.Tests.ReaderFuzz.targets do
            let clock = Stopwatch.StartNew ()
            let t = TinyGrow.Datasets.Tests.ReaderFuzz.check cases seed property
            printfn "| %s | %d | %d | %d | %d | %.0f |" name cases t.Same t.Changed t.Refused clock.Elapsed.TotalSeconds
        0
    | [ "stats-profile" ] -> ConvCost.statsProfile (); 0
    | [ "ops-profile" ] -> ConvCost.opsProfile (); 0
    | "stats-ratio" :: widths ->
        // Cost of the statistics pass and of the solves, as ratios of one plain training epoch over
        // the same samples, at the given hidden widths (default: the default experiment's final
        // 239/85). Both sides run in this process, alternated 3 times; medians are reported.
        let widths = if widths.IsEmpty then [ 239; 85 ] else widths |> List.map int
        use data = loadFashion ()
        use generator = new torch.Generator (1UL)
        use net = Network.Build (blockKinds, kinds, model widths "tanh", data.InputShape, data.Classes, torch.CPU, torch.ScalarType.Float32, generator)
        let optimizer = Sgd ((fun () -> net.Parameters), 0.9, 0.0) :> IOptimizer
        let n = data.Train.Count
        use trainX = data.Pipeline.Inputs data.Train.Samples
        let time f = let sw = Stopwatch.StartNew () in f (); sw.Elapsed.TotalSeconds
        let epoch () =
            use order = torch.randperm (n, generator = generator)
            for b in 0L .. 128L .. n - 1L do
                use scope = torch.NewDisposeScope ()
                let x, y = Training.batch data order b (min 128L (n - b)) null
                Training.trainStep net optimizer 0.01 x y |> ignore
        let strategy = TinyStrategy () :> IGrowthStrategy
        let passAndSolve () =
            let stats = StatisticsPass.statisticsPass net trainX data.Train.Labels 1024L
            let solve =
                time (fun () ->
                    for j in 0 .. net.JunctionCount - 1 do
                        use p = strategy.Propose (GrowthRequest (stats[j], net.Junctions[j], 32, GrowthOptions (), generator))
                        ())
            stats |> Array.iter (fun s -> s.Dispose ())
            solve
        epoch () // warm-up
        let runs =
            [ for _ in 1 .. 3 ->
                let train = time epoch
                let mutable solve = 0.0
                let pass = time (fun () -> solve <- passAndSolve ())
                train, pass - solve, solve ]
        let train = median [ for t, _, _ in runs -> t ]
        let pass = median [ for _, p, _ in runs -> p ]
        let solve = median [ for _, _, s in runs -> s ]
        let ratio = median [ for t, p, _ in runs -> p / t ]
        printfn "widths %s, %d samples (medians of 3 alternated runs)" (String.Join ("/", widths)) n
        printfn "training epoch (batch 128):                   %6.2f s" train
        printfn "statistics pass (all junctions, batch 1024):  %6.2f s   ratio to the epoch %.2f" pass ratio
        printfn "solves (δ, N, S2^-1/2, SVD; %d junctions):     %6.3f s   ratio to the epoch %.3f" net.JunctionCount solve (solve / train)
        0
    | _ ->
        eprintfn "usage: TinyGrow.Bench checkpoint-cost | queue [JOBS [CONNECTION]] | daemon-idle [SECONDS] | compare [ACTIVATION EPOCHS] | conv-cost [SAMPLES] | fuzz-readers [CASES [SEED]] | rows | conv-modes [EPOCHS [SEED ...]] | whitening-time [D2 ...] | whitening-precision [D2 ...] | step-time [D2 ... | conv] | step-time-from OUTPUT ... | whitening-parts | stats-ratio [WIDTH] | step-profile | strategies [EPOCHS [SEED ...]] | growth-cost [SEED ...] | claim-cnn [EPOCHS [SEED ...]] | claim-resnet [EPOCHS [SEED ...]] | protocol [EPOCHS [SEED ...]] | cnn [EPOCHS [SEED ...]] | smoke ACTIVATION EPOCHS THRESHOLD STEPS"
        2
