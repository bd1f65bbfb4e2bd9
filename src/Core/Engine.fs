/// The growth engine's entry point for the host: train, grow at the scheduled points, write the
/// run's outputs (metrics.jsonl, model) into the run folder.
namespace TinyGrow.Core

open System
open System.Collections.Generic
open System.Diagnostics
open System.IO
open System.Threading
open Microsoft.Extensions.Logging
open TorchSharp
open TinyGrow.Abstractions

/// What a finished run reports (also the `final` line of metrics.jsonl).
type RunSummary =
    { TestAccuracy: float
      Parameters: int64
      Widths: int[]
      Seconds: float
      GrowthSeconds: float }

/// `strategy` may be null: the network then trains at its starting widths (a fixed baseline).
type GrowthEngine(blockKinds: IReadOnlyDictionary<string, IBlockKind>, layerKinds: IReadOnlyDictionary<string, ILayerKind>,
                  strategy: IGrowthStrategy | null, logger: ILogger) =
    let growingWith: IGrowthStrategy option =
        match strategy with
        | null -> None
        | s -> Some s
    let growing = growingWith.IsSome
    let progress = RunProgress logger
    let mutable checkpointedOnStop = false
    // The stop token of the run in progress, for the growth steps (set by Run).
    let mutable stopping = CancellationToken.None
    let mutable observer: IRunProgress = ProgressLog logger
    // The input statistics cache's folder (InputStatisticsCache); null: none, computed every run.
    let mutable cacheFolder: string | null = null
    // The input covariances being computed ahead for the next Run (StartInputCovariances), until it takes them;
    // read and cleared under `aheadLock` (Run's thread and the host's Dispose).
    let mutable ahead: InputCovariancesAhead option = None
    let aheadLock = obj ()
    let takeAhead () = lock aheadLock (fun () -> let a = ahead in ahead <- None; a)
    // The cores StartInputCovariances and the growth steps count with (Cores).
    let mutable cores = Environment.ProcessorCount
    // Whether the run in progress leaves a core for the γ search's samples while a strategy proposes (set by Run).
    let mutable keepWhileProposing = false

    let makeOptimizer (training: TrainingOptions) (net: Network) : IOptimizer =
        match training.Optimizer with
        | "adam" -> Adam ((fun () -> net.Parameters), 0.9, 0.999, 1e-8, training.WeightDecay)
        | _ -> Sgd ((fun () -> net.Parameters), training.Momentum, training.WeightDecay)

    /// Samples a growth step draws from the training split: the first `statsCount` of a permutation
    /// for a statistics pass (None when 0), the next GammaSearchSamples for the γ search (disjoint, not
    /// augmented: the bottleneck of the data as it is, the same for a given seed). Tensors in the caller's scope.
    let drawSamples (growth: GrowthOptions) (data: LoadedDataset) (generator: torch.Generator) (statsCount: int64) =
        let train = data.Train
        let n = train.Count
        let heldCount = min (int64 growth.GammaSearchSamples) (n - statsCount)
        let pick = torch.randperm(n, generator = generator).``to`` train.Labels.device
        let select (start: int64) (count: int64) = Training.select data train (pick.narrow (0L, start, count)) null
        let heldX, heldY = select statsCount heldCount
        if statsCount = 0L then None, heldX, heldY
        else Some (select 0L statsCount), heldX, heldY

    /// What a junction's growth needs besides its statistics (see Growth.GrowthContext): each
    /// junction's γ search starts where its last one ended (GrowthEvent.NextStart; cold at first), or with unit
    /// new units, until the junction accepts a γ, at the median γ its kind accepted (GammaSearch.borrowedStart, startOf).
    let contextFor (net: Network) (growth: GrowthOptions) (generator: torch.Generator) (whitenings: Lazy<Dictionary<int, InputWhitening.InputCovariance>>)
                   (state: RunState) (heldX: torch.Tensor) (heldY: torch.Tensor) : Growth.GrowthContext =
        let last = match state.LastGammas with | null -> [||] | g -> g
        let accepted = match state.AcceptedGammas with | null -> [||] | g -> g
        let kinds = net.Junctions |> Array.map GammaSearch.junctionKind
        { Cached = (fun j -> match whitenings.Value.TryGetValue j with | true, c -> Some c | _ -> None)
          GammaStart = (fun j -> if j < last.Length && last[j] > 0.0 then last[j] else nan)
          BorrowedStart = GammaSearch.borrowedStart kinds accepted
          Strategy = growingWith.Value
          Options = growth
          Generator = generator
          HeldX = heldX
          HeldY = heldY
          StillProposing = (fun junction seconds ->
              logger.LogInformation ("Growth: strategy {Strategy} still proposing for junction {Junction} after {Seconds:f0} s (Growth:StrategyTimeoutSeconds = {Limit})",
                                     growingWith.Value.Name, junction, seconds, growth.StrategyTimeoutSeconds))
          StillProposingEvery = TimeSpan.FromSeconds 15.0
          Cancellation = stopping
          KeepWhileProposing = keepWhileProposing }

    /// StepReport.book for this run's observer and strategy; returns the neurons added.
    let report (net: Network) (optimizer: IOptimizer) (log: RunLog) (board: TensorBoardLog) (epoch: int) (stepIndex: int)
               (state: RunState) (events: GammaSearch.GrowthEvent list) =
        StepReport.book logger observer growingWith.Value.Name net optimizer log board epoch stepIndex state events

    /// One growth step with statistics from a pass of its own (Growth:StatisticsFrom = "pass"): statistics
    /// and held-out samples drawn from the training split, disjoint, not augmented: the bottleneck of the
    /// data as it is, the same for a given seed.
    let grow (net: Network) (optimizer: IOptimizer) (growth: GrowthOptions) (data: LoadedDataset) (generator: torch.Generator) (log: RunLog) (board: TensorBoardLog) (epoch: int) (stepIndex: int)
             (whitenings: Lazy<Dictionary<int, InputWhitening.InputCovariance>>) (state: RunState) =
        use scope = torch.NewDisposeScope ()
        let statsCount = min (int64 growth.StatisticsSamples) (data.Train.Count / 2L)
        let statsX, statsY, heldX, heldY =
            match drawSamples growth data generator statsCount with
            | Some (statsX, statsY), heldX, heldY -> statsX, statsY, heldX, heldY
            | None, _, _ -> invalidOp "A statistics pass needs statistics samples."
        observer.Growing (epoch, stepIndex)
        let events = Growth.stepIn (contextFor net growth generator whitenings state heldX heldY) net stepIndex statsX statsY
        report net optimizer log board epoch stepIndex state events

    /// Growth:StatisticsFrom = "training": the junction(s) of `window` grow from its statistics:
    /// "best" lets the winner among them grow; with Growth:SharedStatistics each grows in turn, except one whose
    /// layers a junction grown before it widened (Growth.unaffectedBy); otherwise the window holds the next junction
    /// of the step alone (the statistics of those after it would no longer describe the network once it has grown,
    /// so they get windows of their own). Returns the neurons added and the window's junctions left for a window of
    /// their own.
    let growFromWindow (net: Network) (optimizer: IOptimizer) (growth: GrowthOptions) (data: LoadedDataset) (generator: torch.Generator) (log: RunLog) (board: TensorBoardLog)
                       (epoch: int) (stepIndex: int) (whitenings: Lazy<Dictionary<int, InputWhitening.InputCovariance>>) (state: RunState)
                       (window: TrainingStatistics.Window) : int * int list =
        let stats = window.Finish ()
        // One junction (or the best of them) from the window's statistics, with held-out samples of its own and
        // the γ starts as the junctions grown before it left them.
        let growWith (grow: Growth.GrowthContext -> GammaSearch.GrowthEvent) =
            use scope = torch.NewDisposeScope ()
            let _, heldX, heldY = drawSamples growth data generator 0L
            let event = grow (contextFor net growth generator whitenings state heldX heldY)
            event, report net optimizer log board epoch stepIndex state [ event ]
        try
            match window.Junctions with
            | [ j ] -> snd (growWith (fun context -> Growth.growOne context net stats window.Seconds j)), []
            | _ when growth.Selection = "best" -> snd (growWith (fun context -> Growth.growBest context net stats window.Seconds)), []
            | junctions ->
                let grown = ResizeArray<int> ()
                let mutable added = 0
                let left =
                    [ for j in junctions do
                        if grown |> Seq.forall (fun g -> Growth.unaffectedBy net g j) then
                            // The window's seconds go with the first junction's event, as a pass's do.
                            let seconds = if j = List.head junctions then window.Seconds else 0.0
                            let event, n = growWith (fun context -> Growth.growOne context net stats seconds j)
                            added <- added + n
                            if event.Gamma > 0.0 then grown.Add j
                        else yield j ]
                added, left
        finally
            Growth.release stats

    /// Folder of the input statistics cache (InputStatisticsCache; the host's Output:CacheDirectory),
    /// or null (the default): no cache, the input covariance is computed by every run. Set before `Run`.
    member _.InputStatisticsCache
        with get () : string | null = cacheFolder
        and set (value: string | null) = cacheFolder <- value

    /// Starts computing the input covariances of the run about to start on `data` (not a resume) on a core its
    /// training leaves idle (InputCovariancesAhead: nothing starts on a GPU, on a machine without a spare
    /// core, or for a fixed network). Call once the dataset is loaded, before `Run` with the same `data`,
    /// `model` and `growth`, which then takes them; disposing the engine ends a computation no run took. Set
    /// InputStatisticsCache first.
    member _.StartInputCovariances (data: LoadedDataset, model: ModelOptions, training: TrainingOptions, growth: GrowthOptions, device: torch.Device) =
        takeAhead () |> Option.iter (fun a -> (a :> IDisposable).Dispose ())
        if growing && growth.StepsPerEpoch > 0 && growth.UntilEpoch >= 1 then
            let started = InputCovariancesAhead.TryStart (logger, cacheFolder, blockKinds, layerKinds, model, training, growth, data, device, cores)
            lock aheadLock (fun () -> ahead <- started)

    /// The machine's cores, for StartInputCovariances and the growth steps' work beside a strategy call (default
    /// Environment.ProcessorCount, which honours the process's CPU limits). Set before StartInputCovariances and Run.
    member _.Cores
        with get () = cores
        and set (value: int) = cores <- value

    /// The last batch trained, for the report of a run that stops early.
    member _.Progress = progress

    /// The run stopped because it was asked to, right after writing a checkpoint.
    member _.CheckpointedOnStop = checkpointedOnStop

    /// Where the run reports its epochs, batches and growth steps as they happen (a live display);
    /// by default a log line every 15 s (ProgressLog). Set before `Run`.
    member _.Observer
        with get () = observer
        and set (value: IRunProgress) = observer <- value

    member this.Run
        (
            data: LoadedDataset,
            model: ModelOptions,
            training: TrainingOptions,
            growth: GrowthOptions,
            device: torch.Device,
            runDirectory: string,
            cancellation: CancellationToken
        ) : RunSummary =
        this.Run (data, model, training, growth, device, runDirectory, CheckpointOptions (), false, cancellation)

    /// `resume`: continue the run in `runDirectory` from its newest good checkpoint (none: start over).
    member _.Run
        (
            data: LoadedDataset,
            model: ModelOptions,
            training: TrainingOptions,
            growth: GrowthOptions,
            device: torch.Device,
            runDirectory: string,
            checkpointing: CheckpointOptions,
            resume: bool,
            cancellation: CancellationToken
        ) : RunSummary =
        stopping <- cancellation
        let clock = Stopwatch.StartNew ()
        // The input covariances computed ahead for this run (StartInputCovariances), if they are for it.
        let computedAhead =
            match takeAhead () with
            | Some a when a.IsFor (data, model, training, growth, device, cacheFolder) && not resume -> Some a
            | other ->
                other |> Option.iter (fun a -> (a :> IDisposable).Dispose ())
                None
        // Disposed here if the run fails before RunInputCovariances owns it.
        let mutable aheadOwned = false
        use _ = { new IDisposable with
                    member _.Dispose () = if not aheadOwned then computedAhead |> Option.iter (fun a -> (a :> IDisposable).Dispose ()) }
        let defaultGenerator = torch.manual_seed training.Seed
        use generator = new torch.Generator (uint64 training.Seed)
        // Augmentation draws from its own generator, so that switching it on or off leaves the
        // shuffling, the initial weights and the growth samples unchanged.
        use augmentation = new torch.Generator (uint64 training.Seed ^^^ 0x5DEECE66DUL)
        let generators = [| generator; augmentation; defaultGenerator |]
        let net, optimizer, state, restoredOrder =
            match (if resume then Checkpoint.openLatest logger runDirectory else None) with
            | Some r ->
                use r = r
                let net = RunResume.network blockKinds layerKinds data device r
                try
                    let optimizer = makeOptimizer training net
                    let state, order = RunResume.rest r net optimizer generators device progress
                    net, optimizer, state, order
                with _ ->
                    (net :> IDisposable).Dispose ()
                    reraise ()
            | None ->
                let net = Network.Build (blockKinds, layerKinds, model, data.InputShape, data.Classes, device, torch.ScalarType.Float32, generator)
                net, makeOptimizer training net, RunState.Start (), null
        use net = net
        let threads, threadsWhy = ComputeThreads.apply training device net
        keepWhileProposing <- device.``type`` = DeviceType.CPU && ComputeThreads.spareBeside cores threads
        // The permutation of the epoch in progress (null between epochs).
        let mutable order: torch.Tensor | null = restoredOrder
        use log = new RunLog (Path.Combine (runDirectory, "metrics.jsonl"), state.MetricsBytes)
        // The input covariances, computed at the first growth step (and again by a resumed run: they are not
        // checkpointed); any cache entries still being written are waited for when the run ends.
        use inputCovariances = new RunInputCovariances (logger, cacheFolder, net, growth, data, computedAhead, cancellation)
        aheadOwned <- true
        let whitenings = inputCovariances.Whitenings
        let board = TensorBoardLog runDirectory
        board.GrowthSteps <- state.GrowthSteps
        let n = data.Train.Count
        if growing && n < 2L then
            invalidArg "data" $"Growth needs at least 2 training samples (statistics and γ search use disjoint ones); {data.Name} has {n}."
        let batchSize = int64 training.BatchSize
        let batchesPerEpoch = int ((n + batchSize - 1L) / batchSize)
        let totalSteps = int64 training.Epochs * int64 batchesPerEpoch
        let secondsBefore = state.Seconds
        let elapsed () = secondsBefore + clock.Elapsed.TotalSeconds
        let mutable lastCheckpoint = Stopwatch.StartNew ()
        let checkpoint (why: string) =
            state.Seconds <- elapsed ()
            state.MetricsBytes <- log.Length
            state.MetricsSha256 <- log.Sha256
            state.FirstLoss <- progress.FirstLoss
            let t = Stopwatch.StartNew ()
            let bytes = Checkpoint.write runDirectory net data.InputShape data.Classes optimizer generators order state
            logger.LogInformation ("Checkpoint ({Why}) at epoch {Epoch}, batch {Batch}: {Megabytes:f1} MB in {Milliseconds:f0} ms",
                                   why, state.Epoch, state.Batch, float bytes / 1e6, t.Elapsed.TotalMilliseconds)
            lastCheckpoint <- Stopwatch.StartNew ()
        // Asked to stop during a growth step: the step is abandoned (no checkpoint of a half-grown
        // network); the last checkpoint, from before the step, is what a resume starts from.
        let abandonedOnStop (run: unit -> 'T) : 'T =
            try run ()
            with :? OperationCanceledException ->
                logger.LogWarning ("Stop asked during growth step {Step}: the step is abandoned; a resume starts from the last checkpoint, from before it.",
                                   state.GrowthSteps)
                reraise ()
        // Asked to stop (SIGTERM, Ctrl-C): checkpoint where the run is, then stop.
        let stopIfAsked () =
            if cancellation.IsCancellationRequested then
                if checkpointing.OnStop then
                    checkpoint "stopping"
                    checkpointedOnStop <- true
                cancellation.ThrowIfCancellationRequested ()
        if growing && growth.StatisticsFrom = "training" && growth.SignificanceTest <> "none" then
            logger.LogWarning ("Growth:SignificanceTest={Test} with statistics from the training batches: correct (every batch is split among the test's groups, so the weights' drift is not counted as noise), but each batch then adds to {Groups} group sums; measured on Fashion-MNIST, 5,000-sample windows cost 2x the growth time of a statistics pass of the same size. Growth:StatisticsFrom=pass is the faster choice for growth that stops by itself.",
                               growth.SignificanceTest, growth.SignificanceGroups)
        // The default cutoff (1e-3) was chosen on dense networks; conv junctions measured better at 1e-10.
        let convJunctions = net.Junctions |> Seq.exists (fun j -> j.A.Kind = "conv" || j.B.Kind = "conv")
        if growing && convJunctions && growth.EigenCutoff > 1e-6 then
            logger.LogInformation ("Growth:EigenCutoff={Cutoff} with convolutional junctions: the Fashion-MNIST CNN grows further and ends 1.1 points higher on average with 1e-10 (3 seeds; the conv experiments set it; docs/notebook/2026-11-30-eigenvalue-cutoff.md).",
                                   growth.EigenCutoff)
        logger.LogInformation ("Training on {Dataset} ({Train} train / {Test} test) on {Device} ({Threads} CPU thread(s), {ThreadsWhy}); widths {Widths}, {Parameters} parameters; strategy {Strategy}",
                               data.Name, n, data.Test.Count, device.``type``, threads, threadsWhy, String.Join ("/", net.Widths), net.ParameterCount,
                               (match growingWith with Some s -> s.Name | None -> "none (fixed widths)"))
        observer.Started (training.Epochs, batchesPerEpoch, state.Epoch, state.Batch, net.Widths)
        let writeAfterGrowth (line: AfterGrowth.Line) =
            log.Write ("after_growth",
                [ "step", box line.Step; "batches", box line.Batches; "train_loss", box line.Mean; "train_loss_error", box line.Error
                  "before_batches", box line.BeforeBatches; "before_train_loss", box line.BeforeMean; "before_train_loss_error", box line.BeforeError
                  "raised", box line.Raised ])
            if line.Raised then
                logger.LogWarning ("Growth step {Step} raised the training loss: {After:f4} ± {AfterError:f4} over the {Batches} batches after it, against {Before:f4} ± {BeforeError:f4} over the {BeforeBatches} before.",
                                   line.Step, line.Mean, line.Error, line.Batches, line.BeforeMean, line.BeforeError, line.BeforeBatches)
        // Growth:StatisticsFrom = "training": the statistics window being summed over training batches (DESIGN §4.5).
        let fromTraining = growing && growth.StatisticsFrom = "training"
        let mutable window: TrainingStatistics.Window option = None
        /// Opens the window of the junctions still to grow in the step: all of them for "best" (one grows) and
        /// with shared statistics, else the next one alone.
        let openWindow (pending: int list) =
            // Read when the window is complete: the training batches it sums meanwhile overlap a computation ahead.
            let givenS2 j : Lazy<torch.Tensor> | null =
                if inputCovariances.ReadsInput j then lazy whitenings.Value[j].S2 else null
            let summed = if growth.Selection = "best" || growth.SharedStatistics then pending else [ List.head pending ]
            window <- Some (new TrainingStatistics.Window (summed, TrainingStatistics.windowBatches growth.StatisticsSamples training.BatchSize,
                                                           training.BatchSize, StatisticsPass.significanceGroups growth, growth.RowsPerDimension, givenS2,
                                                           KeepRows = (fun j -> NewUnits.sampleRowsFor growth net.Junctions[j]),
                                                           SampleFromEveryRow = (growth.CrossValidationRows > 0)))
            state.PendingJunctions <- List.toArray pending
        let closeWindow () =
            window |> Option.iter (fun w -> (w :> IDisposable).Dispose ())
            window <- None
        let settled () = growth.StopAfterEmptySteps > 0 && state.EmptyGrowthSteps >= growth.StopAfterEmptySteps
        /// A growth step is over: its bookkeeping, the settled test, the checkpoint after growth.
        let finishStep (epoch: int) (added: int) =
            state.GrowthSteps <- state.GrowthSteps + 1
            state.EmptyGrowthSteps <- if added > 0 then 0 else state.EmptyGrowthSteps + 1
            state.PendingJunctions <- null
            state.PendingAdded <- 0
            if settled () then
                logger.LogInformation ("epoch {Epoch}: growth stopped for good after {Empty} steps in a row that added no neuron; widths {Widths}",
                                       epoch, state.EmptyGrowthSteps, String.Join ("/", net.Widths))
            if checkpointing.AfterGrowth then checkpoint "growth step"
        /// Growth:StatisticsFrom = "training": starts growth step state.GrowthSteps by opening its window
        /// (a step with nothing to grow ends at once), and the deferred steps that then fall due.
        let rec startStep (epoch: int) =
            if settled () then state.DeferredSteps <- 0
            else
                match Selection.chosenJunctions net growth state.GrowthSteps with
                | [] ->
                    finishStep epoch 0
                    nextDeferred epoch
                | junctions ->
                    observer.Growing (epoch, state.GrowthSteps)
                    openWindow junctions
        and nextDeferred (epoch: int) =
            if state.DeferredSteps > 0 then
                state.DeferredSteps <- state.DeferredSteps - 1
                startStep epoch
        // A run resumed in the middle of a window sums it again from here: the sums are not checkpointed.
        match state.PendingJunctions with
        | NonNull pending when fromTraining && pending.Length > 0 ->
            logger.LogInformation ("Growth step {Step}: the statistics window of junctions {Junctions} starts again from the resumed batch (windows are not checkpointed).",
                                   state.GrowthSteps, String.Join (", ", pending))
            openWindow (List.ofArray pending)
        | _ -> ()
        try
            while state.Epoch <= training.Epochs do
                let epoch = state.Epoch
                stopIfAsked ()
                let growthPoints = if growing then Schedule.growthBatches growth epoch batchesPerEpoch else Set.empty
                let epochOrder: torch.Tensor =
                    match order with
                    | null ->
                        let o = (use onCpu = torch.randperm (n, generator = generator) in onCpu.``to`` device)
                        order <- o
                        o
                    | o -> o
                for b in state.Batch .. batchesPerEpoch - 1 do
                    if growthPoints.Contains b && not state.GrownAtBatch && not (settled ()) then
                        let t = Stopwatch.StartNew ()
                        if not fromTraining then
                            AfterGrowth.start state state.GrowthSteps |> Option.iter writeAfterGrowth
                            let added = abandonedOnStop (fun () -> grow net optimizer growth data generator log board epoch state.GrowthSteps whitenings state)
                            state.GrowthSeconds <- state.GrowthSeconds + t.Elapsed.TotalSeconds
                            state.GrownAtBatch <- true
                            finishStep epoch added
                        elif window.IsSome then
                            logger.LogDebug ("epoch {Epoch}, batch {Batch}: growth point deferred, step {Step} is still summing its statistics", epoch, b, state.GrowthSteps)
                            state.DeferredSteps <- state.DeferredSteps + 1
                            state.GrownAtBatch <- true
                        else
                            state.GrownAtBatch <- true
                            startStep epoch
                            state.GrowthSeconds <- state.GrowthSeconds + t.Elapsed.TotalSeconds
                    stopIfAsked ()
                    use scope = torch.NewDisposeScope ()
                    let start = int64 b * batchSize
                    let x, y = Training.batch data epochOrder start (min batchSize (n - start)) augmentation
                    let lr = Schedule.learningRate training state.Step totalSteps
                    let batchLoss =
                        match window with
                        | Some w -> TrainingStatistics.trainStep net optimizer lr x y w generator
                        | None -> Training.trainStep net optimizer lr x y
                    let loss = RunGuards.trained progress epoch (b + 1) batchesPerEpoch lr batchLoss
                    state.EpochLossSum <- state.EpochLossSum + loss
                    AfterGrowth.add state loss |> Option.iter writeAfterGrowth
                    state.Step <- state.Step + 1L
                    state.Batch <- b + 1
                    state.GrownAtBatch <- false
                    match window with
                    | Some w when w.IsComplete ->
                        let t = Stopwatch.StartNew ()
                        let windowSeconds = w.Seconds
                        let added, left =
                            try abandonedOnStop (fun () -> growFromWindow net optimizer growth data generator log board epoch state.GrowthSteps whitenings state w)
                            finally closeWindow ()
                        let remaining =
                            match state.PendingJunctions with
                            | NonNull pending when growth.Selection <> "best" && not growth.SharedStatistics && pending.Length > 1 -> List.ofArray pending |> List.tail
                            | _ -> left
                        state.PendingAdded <- state.PendingAdded + added
                        if remaining.IsEmpty then
                            AfterGrowth.start state state.GrowthSteps |> Option.iter writeAfterGrowth
                            state.GrowthSeconds <- state.GrowthSeconds + windowSeconds + t.Elapsed.TotalSeconds
                            finishStep epoch state.PendingAdded
                            t.Restart ()
                            nextDeferred epoch
                        else openWindow remaining
                        // The window's sums (timed by the window) and the solves, γ searches, applies and
                        // the opening of the next window (the checkpoint after a step is not growth).
                        state.GrowthSeconds <- state.GrowthSeconds + (if remaining.IsEmpty then 0.0 else windowSeconds) + t.Elapsed.TotalSeconds
                    | _ -> ()
                    // A timer checkpoint waits for the window to close: its sums are not checkpointed.
                    if checkpointing.EverySeconds > 0.0 && lastCheckpoint.Elapsed.TotalSeconds >= checkpointing.EverySeconds && window.IsNone then
                        checkpoint "timer"
                    observer.Batch (epoch, b + 1, batchesPerEpoch, state.EpochLossSum / float (b + 1))
                let trainLoss = state.EpochLossSum / float batchesPerEpoch
                let testLoss, testAccuracy = Training.evaluate net data data.Test
                state.LastAccuracy <- testAccuracy
                board.Epoch (epoch, trainLoss, testLoss, testAccuracy, net.ParameterCount, net.Widths)
                log.Write ("epoch",
                    [ "epoch", box epoch; "train_loss", box trainLoss; "test_loss", box testLoss; "test_accuracy", box testAccuracy
                      "parameters", box net.ParameterCount; "widths", box net.Widths; "seconds", box (elapsed ()) ])
                observer.Epoch (epoch, training.Epochs, trainLoss, testAccuracy, net.Widths)
                logger.LogInformation ("epoch {Epoch}/{Epochs}: train loss {TrainLoss:f4}, test accuracy {Accuracy:p2}, widths {Widths}, {Parameters} parameters, {Seconds:f0} s",
                                       epoch, training.Epochs, trainLoss, testAccuracy, String.Join ("/", net.Widths), net.ParameterCount, elapsed ())
                epochOrder.Dispose ()
                order <- null
                state.Epoch <- epoch + 1
                state.Batch <- 0
                state.GrownAtBatch <- false
                state.EpochLossSum <- 0.0
            if window.IsSome then
                logger.LogInformation ("Training ended while growth step {Step} was still summing its statistics ({Collected} of {Batches} batches): that step and {Deferred} deferred ones are left undone.",
                                       state.GrowthSteps, window.Value.Collected, window.Value.Batches, state.DeferredSteps)
                state.PendingJunctions <- null
                state.DeferredSteps <- 0
            AfterGrowth.flush state |> Option.iter writeAfterGrowth
        finally
            closeWindow ()
            match order with
            | null -> ()
            | o -> o.Dispose ()
        ModelFile.save net data.InputShape data.Classes runDirectory
        PyTorchExport.writeOrWarn logger net data.InputShape runDirectory
        let summary =
            { TestAccuracy = state.LastAccuracy
              Parameters = net.ParameterCount
              Widths = net.Widths
              Seconds = elapsed ()
              GrowthSeconds = state.GrowthSeconds }
        let setBy =
            if not growing then []
            else
                let reasons =
                    WidthsSetBy.reasons net.Widths [| for j in net.Junctions -> j.MaxWidth |] (settled ())
                                        (growth.SignificanceTest <> "none") (state.GrowthSteps > 0 && state.EmptyGrowthSteps = 0)
                                        (match state.EmptyInARow with | null -> [||] | e -> e)
                WidthsSetBy.report logger net.Widths reasons training.Epochs
                [ "widths_set_by", box reasons ]
        log.Write ("final",
            [ "test_accuracy", box summary.TestAccuracy; "parameters", box summary.Parameters; "widths", box summary.Widths
              "seconds", box summary.Seconds; "growth_seconds", box summary.GrowthSeconds ] @ setBy)
        summary

    interface IDisposable with
        /// Ends a computation of input covariances ahead that no run took (StartInputCovariances).
        member _.Dispose () =
            takeAhead () |> Option.iter (fun a -> (a :> IDisposable).Dispose ())
