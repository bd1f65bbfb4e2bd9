/// Statistics from the training batches (Growth:StatisticsFrom = "training", DESIGN §4.5): a window
/// sums what a statistics pass sums, at the weights each batch was trained with; the engine grows from
/// windows with no statistics pass of its own, defers growth points that fall inside a window, and
/// resumes a run stopped inside one.
module TinyGrow.Tests.TrainingStatisticsTests

open System
open System.IO
open System.Text.Json
open System.Threading
open Expecto
open Microsoft.Extensions.Logging.Abstractions
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Tests.TestUtil
open TinyGrow.Tests.Fixtures

/// 200 samples in R^6 with labels from 4 classes, and an SGD optimizer over the network.
let private problem (net: Network) =
    let x = randn 71L 200L 6L
    let y = labels 72L 200L 4L
    x, y, Sgd ((fun () -> net.Parameters), 0.9, 0.0) :> IOptimizer

/// Trains over (x, y) in batches of 50 with a window over both junctions; returns its statistics.
let private windowOver (net: Network) (optimizer: IOptimizer) (lr: float) (groups: int) (x: torch.Tensor) (y: torch.Tensor)
                       (before: int -> torch.Tensor -> torch.Tensor -> unit) =
    use window = new TrainingStatistics.Window ([ 0; 1 ], 4, 50, groups, 0, (fun _ -> null))
    for i in 0 .. 3 do
        let xb, yb = x.narrow (0L, int64 i * 50L, 50L), y.narrow (0L, int64 i * 50L, 50L)
        before i xb yb
        Expect.isFalse window.IsComplete $"the window is not complete before batch {i + 1} of 4"
        TrainingStatistics.trainStep net optimizer lr xb yb window null |> ignore
    Expect.isTrue window.IsComplete "complete after its 4 batches"
    window.Finish ()

/// A 6 → 1 (tanh) → 4 student of a linear teacher (a bottleneck to find), 2,000 samples.
let private teacherProblem (seed: int64) =
    use net = mlp seed f64 6 [ 1 ] "tanh" 4
    let x = randn (seed + 1L) 2000L 6L
    use t = randn (seed + 2L) 6L 4L
    let y = (use logits = x.mm t in logits.argmax 1L)
    x, y

/// The sign-flip noise floor and count of a tiny proposal at junction 0.
let private significance (net: Network) (stats: JunctionStatistics) =
    use p = tiny.Propose (GrowthRequest (stats, net.Junctions[0], 8, GrowthOptions (SignificanceTest = "signflip", NeuronsPerStep = 8), new torch.Generator (11UL)))
    p.NoiseFloor.Value, p.Count

/// Trains `net` over (x, y) in batches, summing junction 0's rows with batch i in group i mod groups
/// (the grouping before groups were split within batches).
let private wholeBatchGroups (net: Network) (optimizer: IOptimizer) (groups: int) (batch: int64) (lr: float) (x: torch.Tensor) (y: torch.Tensor) =
    let acc = Statistics.JunctionAccumulator groups
    for i in 0L .. x.shape[0] / batch - 1L do
        use scope = torch.NewDisposeScope ()
        Training.zeroGradients net
        let xb, yb = x.narrow (0L, i * batch, batch), y.narrow (0L, i * batch, batch)
        let logits, records = net.ForwardRecording (xb, true)
        records[0].BOutput.retain_grad () |> ignore
        let loss = torch.nn.functional.cross_entropy (logits, yb)
        loss.backward ()
        let add () =
            use _ = torch.no_grad ()
            match records[0].BOutput.grad with
            | null -> failtest "no gradient at B's output"
            | grad ->
                use g = grad.mul ((float batch).ToScalar ())
                use rows = net.Junctions[0].Rows (records[0], g, 0L, null)
                acc.Add rows
        add ()
        optimizer.Step lr
    acc.Finish ()

let private statisticsTests =
    testList "window" [
        test "with the weights moving, groups split within every batch keep the noise floor a pass sees; whole batches as groups would count the drift as noise" {
            let x, y = teacherProblem 700L
            use x = x
            use y = y
            let groups, batch, lr = 16, 100L, 0.5
            let fresh () =
                let net = mlp 701L f64 6 [ 1 ] "tanh" 4
                net, Sgd ((fun () -> net.Parameters), 0.9, 0.0) :> IOptimizer
            // The noise floor of a pass at the start (no drift).
            let startNet, _ = fresh ()
            use startNet = startNet
            use passStats = (StatisticsPass.statisticsGrouped groups [| 0 |] 0 null startNet x y batch)[0]
            let passFloor, passCount = significance startNet passStats
            // A window over the 20 batches, training at lr 0.5 (the weights move far).
            let net, optimizer = fresh ()
            use net = net
            use window = new TrainingStatistics.Window ([ 0 ], 20, int batch, groups, 0, (fun _ -> null))
            for i in 0L .. 19L do
                TrainingStatistics.trainStep net optimizer lr (x.narrow (0L, i * batch, batch)) (y.narrow (0L, i * batch, batch)) window null |> ignore
            use windowStats = (window.Finish ())[0]
            let windowFloor, windowCount = significance net windowStats
            // The same training with whole batches as groups (batch i in group i mod 16, as before).
            let old, oldOptimizer = fresh ()
            use old = old
            use oldStats = wholeBatchGroups old oldOptimizer groups batch lr x y
            let oldFloor, oldCount = significance old oldStats
            printfn "noise floor: pass at the start %.4f (%d significant), window split within batches %.4f (%d), whole batches as groups %.4f (%d)"
                passFloor passCount windowFloor windowCount oldFloor oldCount
            Expect.isGreaterThan windowCount 0 "the window finds the teacher's bottleneck significant"
            Expect.isLessThan windowFloor (1.5 * passFloor) "split within batches: the floor stays near the pass's"
            // Measured: 0.0381 (pass), 0.0357 (split), 0.0514 (whole batches: 1.44×, the drift of 20 steps at lr 0.5).
            Expect.isGreaterThan oldFloor (1.25 * windowFloor) "whole batches as groups: the drift inflates the floor"
        }

        test "at learning rate 0 a window sums exactly what a statistics pass over the same samples sums" {
            use net = mlp 70L f64 6 [ 5; 3 ] "tanh" 4
            let x, y, optimizer = problem net
            let stats = windowOver net optimizer 0.0 0 x y (fun _ _ _ -> ())
            let pass = StatisticsPass.statisticsFor [| 0; 1 |] 0 null net x y 50L
            for j in 0 .. 1 do
                Expect.isEmpty (statsClose stats[j] pass[j] 1e-12) $"junction {j}: statistics that differ"
                Expect.equal stats[j].Samples 200L $"junction {j}: 200 samples"
        }

        test "with groups, every batch is split by sample: group k holds chunk k of each batch (at lr 0, a pass over those samples)" {
            use net = mlp 73L f64 6 [ 5; 3 ] "tanh" 4
            let x, y, optimizer = problem net
            let stats = windowOver net optimizer 0.0 2 x y (fun _ _ _ -> ())
            let nonNull (t: torch.Tensor | null) = match t with NonNull t -> t | Null -> failtest "no per-group sums"
            for k in 0L .. 1L do
                // Chunk k of each batch of 50: samples 25k .. 25k + 24 of it.
                use idx = torch.tensor ([| for b in 0L .. 3L do for i in 0L .. 24L -> b * 50L + k * 25L + i |])
                use xk = x.index_select (0L, idx)
                use yk = y.index_select (0L, idx)
                let chunk = StatisticsPass.statisticsFor [| 0; 1 |] 0 null net xk yk 100L
                for j in 0 .. 1 do
                    // Group sums are on the scale of the whole window (1/200): the chunk's are on 1/100.
                    use m2 = chunk[j].M2 * 0.5
                    use p = chunk[j].P * 0.5
                    Expect.isTrue (allClose ((nonNull stats[j].GroupM2).select (0L, k)) m2 1e-12) $"junction {j}, group {k}: M2"
                    Expect.isTrue (allClose ((nonNull stats[j].GroupP).select (0L, k)) p 1e-12) $"junction {j}, group {k}: P"
        }

        test "while the weights move, a window is the average of each batch's statistics at the weights it was trained with" {
            use net = mlp 74L f64 6 [ 5; 3 ] "tanh" 4
            let x, y, optimizer = problem net
            // Each batch's own statistics (a pass over that batch alone, before its training step), weighted by its samples.
            let perBatch = ResizeArray<JunctionStatistics[]> ()
            let stats = windowOver net optimizer 0.1 0 x y (fun _ xb yb -> perBatch.Add (StatisticsPass.statisticsFor [| 0; 1 |] 0 null net xb yb 50L))
            for j in 0 .. 1 do
                let average (pick: JunctionStatistics -> torch.Tensor) =
                    perBatch |> Seq.map (fun s -> pick s[j]) |> Seq.reduce (fun a b -> a + b) |> fun t -> t / 4.0
                for name, pick in [ "S", (fun (s: JunctionStatistics) -> s.S); "M", (fun s -> s.M); "S2", (fun s -> s.S2)
                                    "M2", (fun s -> s.M2); "P", (fun s -> s.P) ] do
                    Expect.isTrue (allClose (pick stats[j]) (average pick) 1e-12) $"junction {j}: {name} is the batches' average"
                // And not the statistics of the network the window ends with: the weights did move.
                let atEnd = (StatisticsPass.statisticsFor [| j |] 0 null net x y 50L)[0]
                Expect.isFalse (allClose stats[j].M atEnd.M 1e-6) $"junction {j}: M differs from the final network's"
        }
    ]

// ---- the engine (Fixtures.teacherDataset) ----

/// Counts the samples of every call of each path.
type private CountingPipeline () =
    member val Augmented = ResizeArray<int64> () with get
    member val Plain = ResizeArray<int64> () with get
    interface IInputPipeline with
        member this.Inputs samples =
            this.Plain.Add samples.shape[0]
            samples.alias ()
        member this.AugmentedInputs (samples, _) =
            this.Augmented.Add samples.shape[0]
            samples.alias ()

let private kinds = denseKinds
let private blockKinds = mlpBlockKinds
let private model = ModelOptions (Layers = ResizeArray [ spec 1 32 "tanh" true; spec 1 32 "tanh" true ])
let private training = TrainingOptions (Epochs = 3, BatchSize = 50, LearningRate = 0.05)

/// 24 batches an epoch, growth points at batches 0 and 12 of epochs 1–2; windows of 200 samples (4 batches).
let private fromTraining () =
    GrowthOptions (StepsPerEpoch = 2, UntilEpoch = 2, StatisticsSamples = 200, GammaSearchSamples = 250, NeuronsPerStep = 4,
                   StatisticsFrom = "training")

let private withRunFolder (f: string -> unit) =
    let dir = Directory.CreateTempSubdirectory("tinygrow-trainstats-").FullName
    try f dir finally Directory.Delete (dir, true)

let private growthLines (dir: string) =
    File.ReadAllLines (Path.Combine (dir, "metrics.jsonl"))
    |> Array.map (fun l -> JsonDocument.Parse(l).RootElement)
    |> Array.filter (fun e -> e.GetProperty("event").GetString () = "growth")

let private field (e: JsonElement) (name: string) = e.GetProperty(name).GetInt32 ()

/// A run with the options of `growth ()` stopped at batch 2 of epoch 1 (inside the first window, batches 0–3) with a
/// checkpoint, checked to have grown nothing, then resumed to the end; `check` gets the growth lines and the summary.
let private stoppedInsideTheFirstWindow (growth: unit -> GrowthOptions) (check: JsonElement[] -> RunSummary -> unit) =
    use data = teacherDataset ()
    withRunFolder (fun dir ->
        use cts = new CancellationTokenSource ()
        let observer =
            { new IRunProgress with
                member _.Started (_, _, _, _, _) = ()
                member _.Batch (epoch, batch, _, _) = if epoch = 1 && batch = 2 then cts.Cancel ()
                member _.Growing (_, _) = ()
                member _.Grown (_, _, _, _) = ()
                member _.Epoch (_, _, _, _, _) = () }
        use first = new GrowthEngine (blockKinds, kinds, tiny, NullLogger.Instance, Observer = observer)
        let checkpointing = CheckpointOptions (OnStop = true)
        Expect.throwsT<OperationCanceledException> (fun () ->
            first.Run (data, model, training, growth (), torch.CPU, dir, checkpointing, false, cts.Token) |> ignore) "stopped"
        Expect.isTrue first.CheckpointedOnStop "checkpointed on stop"
        Expect.isEmpty (growthLines dir) "nothing grown before the stop"
        use second = new GrowthEngine (blockKinds, kinds, tiny, NullLogger.Instance)
        let summary = second.Run (data, model, training, growth (), torch.CPU, dir, checkpointing, true, CancellationToken.None)
        check (growthLines dir) summary)

let private engineTests =
    testList "engine" [
        test "a significance test with statistics from training windows warns of its cost and names the faster choice; with a pass it does not" {
            use data = teacherDataset ()
            let warnings (from: string) =
                let logger = RecordingLogger ()
                let growth = fromTraining ()
                growth.StatisticsFrom <- from
                growth.SignificanceTest <- "signflip"
                withRunFolder (fun dir ->
                    let oneEpoch = TrainingOptions (Epochs = 1, BatchSize = 50, LearningRate = 0.05)
                    (new GrowthEngine(blockKinds, kinds, tiny, logger)).Run (data, model, oneEpoch, growth, torch.CPU, dir, CancellationToken.None) |> ignore)
                logger.Messages Microsoft.Extensions.Logging.LogLevel.Warning
            match warnings "training" with
            | [ w ] -> Expect.stringContains w "Growth:StatisticsFrom=pass" "names the fix"
            | other -> failtest $"one warning expected, got {other}"
            Expect.isEmpty (warnings "pass") "no warning with a pass"
        }

        test "a run grows from training batches with no statistics pass: only γ-search and test samples take the plain path" {
            use plain = teacherDataset ()
            let pipeline = CountingPipeline ()
            let data = new LoadedDataset (plain.Name, plain.Train, plain.Test, plain.InputShape, plain.Classes, pipeline)
            withRunFolder (fun dir ->
                let summary = (new GrowthEngine(blockKinds, kinds, tiny, NullLogger.Instance)).Run (data, model, training, fromTraining (), torch.CPU, dir, CancellationToken.None)
                let lines = growthLines dir
                Expect.equal lines.Length 8 "4 steps × 2 junctions, each from its own window"
                Expect.equal [ for e in lines -> field e "step", field e "junction" ] [ for s in 0 .. 3 do for j in 0 .. 1 -> s, j ] "steps in order, junctions in order"
                Expect.equal (Array.sum summary.Widths - 2) (lines |> Array.sumBy (fun e -> field e "added")) "widths grew by what the lines say"
                Expect.isGreaterThan (Array.sum summary.Widths) 2 "the network grew"
                Expect.isTrue (lines |> Array.forall (fun e -> e.GetProperty("statistics_seconds").GetDouble () > 0.0)) "each junction's window was timed"
                // Plain path: a γ-search draw of 250 samples per junction grown and 3 test evaluations of 300;
                // no statistics samples (200).
                Expect.equal (pipeline.Plain |> Seq.countBy id |> Map.ofSeq) (Map.ofList [ 250L, 8; 300L, 3 ]) "plain calls by size"
                // Augmented path: the 72 training batches, and the input covariance once (2·200 samples) as trained on.
                Expect.equal (pipeline.Augmented |> Seq.countBy id |> Map.ofSeq) (Map.ofList [ 50L, 72; 400L, 1 ]) "augmented calls by size")
        }

        test "with shared statistics one window serves every junction a grown one did not widen; a widened one gets its own" {
            use data = teacherDataset ()
            let growth = fromTraining ()
            growth.SharedStatistics <- true
            // Three hidden layers: junctions 0 and 2 share no layer, junction 1 shares one with each.
            let threeLayers = ModelOptions (Layers = ResizeArray [ spec 1 32 "tanh" true; spec 1 32 "tanh" true; spec 1 32 "tanh" true ])
            withRunFolder (fun dir ->
                (new GrowthEngine(blockKinds, kinds, tiny, NullLogger.Instance)).Run (data, threeLayers, training, growth, torch.CPU, dir, CancellationToken.None) |> ignore
                let lines = growthLines dir
                let seconds (e: JsonElement) = e.GetProperty("statistics_seconds").GetDouble ()
                let steps = lines |> Array.groupBy (fun e -> field e "step")
                Expect.equal (steps |> Array.map fst) [| 0; 1; 2; 3 |] "every scheduled step"
                let mutable shared = 0
                for step, events in steps do
                    let order = events |> Array.map (fun e -> field e "junction")
                    Expect.equal (Array.sort order) [| 0; 1; 2 |] $"step {step}: every junction once"
                    Expect.equal order[0] 0 $"step {step}: junction 0 first"
                    Expect.isGreaterThan (seconds events[0]) 0.0 $"step {step}: the step's window was timed with its first junction"
                    let at j = events |> Array.find (fun e -> field e "junction" = j)
                    // Junction 1 follows 0 in the shared window unless 0 grew, then it waits for its own window.
                    let zeroGrew = field (at 0) "added" > 0
                    let oneGrewBeforeTwo = order = [| 0; 1; 2 |] && field (at 1) "added" > 0
                    Expect.equal (seconds (at 1) > 0.0) zeroGrew $"step {step}: junction 1 has a window of its own exactly when junction 0 grew"
                    if zeroGrew then Expect.equal order [| 0; 2; 1 |] $"step {step}: junction 2 grows from the shared window before 1's own"
                    Expect.equal (seconds (at 2) > 0.0) oneGrewBeforeTwo $"step {step}: junction 2 has its own window exactly when 1 grew before it"
                    if zeroGrew && seconds (at 2) = 0.0 then shared <- shared + 1
                Expect.isGreaterThan shared 0 "junction 2 grew from a window it shared with a grown junction 0 at least once")
        }

        test "a growth point inside a window is deferred, not dropped: every scheduled step happens" {
            use data = teacherDataset ()
            // Windows of 10 batches: step 0 takes batches 0–19 (two junctions), past the point at batch 12.
            let growth = fromTraining ()
            growth.StatisticsSamples <- 500
            withRunFolder (fun dir ->
                (new GrowthEngine(blockKinds, kinds, tiny, NullLogger.Instance)).Run (data, model, training, growth, torch.CPU, dir, CancellationToken.None) |> ignore
                let steps = growthLines dir |> Array.map (fun e -> field e "step") |> Array.distinct
                Expect.equal steps [| 0; 1; 2; 3 |] "the 4 scheduled steps")
        }

        test "a run stopped inside a window resumes, sums that window again, and ends with every step done" {
            stoppedInsideTheFirstWindow fromTraining (fun lines summary ->
                Expect.equal [ for e in lines -> field e "step", field e "junction" ] [ for s in 0 .. 3 do for j in 0 .. 1 -> s, j ] "every step and junction once"
                Expect.isGreaterThan (Array.sum summary.Widths) 2 "the resumed run grew")
        }

        test "with shared statistics, a run stopped inside the shared window resumes and grows every junction of every step once" {
            let shared () =
                let g = fromTraining ()
                g.SharedStatistics <- true
                g
            stoppedInsideTheFirstWindow shared (fun lines summary ->
                Expect.equal (lines |> Array.map (fun e -> field e "step", field e "junction") |> Array.sort) [| for s in 0 .. 3 do for j in 0 .. 1 -> s, j |] "every step and junction once"
                Expect.isGreaterThan (Array.sum summary.Widths) 2 "the resumed run grew")
        }
    ]

let tests = testList "training statistics" [ statisticsTests; engineTests ]
