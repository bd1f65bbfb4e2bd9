/// The input covariances of a run computed ahead, on a core its training leaves idle, from the moment
/// its dataset is loaded: while the host checks the memory, claims the run folder and writes config.json,
/// and the engine builds the network. The default run grows first at its first batch, so its first growth
/// step otherwise computes them on the run's path (0.10 s of its 0.45 s of growth on Fashion-MNIST:
/// docs/notebook/2026-12-07-default-run-growth-floor.md). The result is the same bit for bit: S2 depends
/// only on the data (InputCovariances.computeOn), so they are computed on a network of the run's plan of
/// its own (the run's trains meanwhile) from the samples the run would take.
namespace TinyGrow.Core

open System
open System.Diagnostics
open System.Threading
open System.Threading.Tasks
open Microsoft.Extensions.Logging
open TorchSharp
open TinyGrow.Abstractions

/// What a computation ahead gives the run: the covariances, the seconds it took on its core and the
/// threads it had.
type ComputedAhead = { Computed: InputCovariances.Computed; Seconds: float; Threads: int }

/// Started by `TryStart`; the run takes the result with `Take` (waiting for it if need be). Disposing
/// waits for the computation to end (it is asked to stop before its next junction) and disposes a result
/// nobody took.
type InputCovariancesAhead private (task: Task<ComputedAhead>, stop: CancellationTokenSource, junctions: Set<int>,
                                    data: LoadedDataset, model: ModelOptions, training: TrainingOptions, growth: GrowthOptions,
                                    device: torch.Device, cacheFolder: string | null) =
    let mutable taken = false
    let mutable disposed = false

    /// Starts computing the input covariances of a run of `model` on `data` on another thread, or None
    /// (nothing started) when the device is not the CPU (a GPU computes them in a fraction of a growth
    /// step) or fewer cores are left beside the run's training threads T (ComputeThreads) than T: the
    /// computation runs on T threads, as the run's own would (MKL and libtorch's reductions give the same
    /// bits only at the same thread count), so that the run grows as if it had computed them itself. The
    /// samples are drawn here, on the calling thread (the dataset's pipeline, a plugin's, is never called from
    /// two threads at once), and so is the set of junctions that read the input (a forward pass of two of them).
    static member TryStart (logger: ILogger, cacheFolder: string | null, blockKinds, layerKinds, model: ModelOptions,
                            training: TrainingOptions, growth: GrowthOptions, data: LoadedDataset, device: torch.Device,
                            cores: int) : InputCovariancesAhead option =
        // A network of the run's plan: its weights do not matter (its own generator; the run's is untouched).
        let buildProbe () =
            use generator = new torch.Generator (0UL)
            try Some (Network.Build (blockKinds, layerKinds, model, data.InputShape, data.Classes, device, torch.ScalarType.Float32, generator))
            with e when not (e :? OutOfMemoryException) ->
                // The run itself builds it and reports what is wrong.
                logger.LogDebug ("Input covariances not computed ahead: the network could not be built ({Error})", e.Message)
                None
        let samples (probe: Network) =
            try
                use scope = torch.NewDisposeScope ()
                let x, y = InputCovariances.samples growth data
                Some (x.DetachFromDisposeScope (), y.DetachFromDisposeScope ())
            with e when not (e :? OutOfMemoryException) ->
                // The run draws them again at its first growth step and reports what is wrong there.
                (probe :> IDisposable).Dispose ()
                logger.LogDebug ("Input covariances not computed ahead: their samples could not be drawn ({Error})", e.Message)
                None
        let start (probe: Network) (x: torch.Tensor, y: torch.Tensor) (threads: int) =
            let junctions =
                try set (InputWhitening.readsInput probe x)
                with _ ->
                    (probe :> IDisposable).Dispose (); x.Dispose (); y.Dispose ()
                    reraise ()
            let stop = new CancellationTokenSource ()
            let compute () =
                use probe = probe
                use x = x
                use y = y
                // This thread's intra-op threads (ComputeThreads): the run's count, on cores training leaves.
                ComputeThreads.setForThisThread threads
                // What this thread's operations run on, as libtorch reports it (the result says so).
                let applied = torch.get_num_threads ()
                let clock = Stopwatch.StartNew ()
                let computed = InputCovariances.computeOn logger cacheFolder InputStatisticsCache.Later probe junctions growth x y stop.Token
                { Computed = computed; Seconds = clock.Elapsed.TotalSeconds; Threads = applied }
            // Its own thread (LongRunning): the thread pool has as few threads as cores.
            let task = Task.Factory.StartNew (compute, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)
            new InputCovariancesAhead (task, stop, junctions, data, model, training, growth, device, cacheFolder)
        if device.``type`` <> DeviceType.CPU then None
        else
            match buildProbe () with
            | None -> None
            | Some probe ->
                let threads, _ = ComputeThreads.forRun training device probe
                if not (ComputeThreads.spareBeside cores threads) then
                    (probe :> IDisposable).Dispose ()
                    logger.LogDebug ("Input covariances not computed ahead: training takes {Threads} of the {Cores} cores", threads, cores)
                    None
                else samples probe |> Option.map (fun xy -> start probe xy threads)

    /// Whether this computation is for a run of `runModel` on `runData` with these options, device and cache
    /// folder (the same objects it was started with: another model may read its input through other
    /// junctions, other training options may use another thread count).
    member _.IsFor (runData: LoadedDataset, runModel: ModelOptions, runTraining: TrainingOptions, runGrowth: GrowthOptions,
                    runDevice: torch.Device, runCacheFolder: string | null) =
        obj.ReferenceEquals (runData, data) && obj.ReferenceEquals (runModel, model) && obj.ReferenceEquals (runTraining, training)
        && obj.ReferenceEquals (runGrowth, growth) && obj.ReferenceEquals (runDevice, device) && runCacheFolder = cacheFolder

    /// The junctions whose A reads the network's input (the keys of the result), known from the start.
    member _.Junctions : Set<int> = junctions

    /// Completes when the computation ends (for tests: a computation that ran before it was disposed).
    member _.Completed : Task = task :> Task

    /// The result (the caller owns its covariances) and the seconds waited for it; its failure rethrown as it
    /// was thrown. Waiting stops when `cancellation` is cancelled (OperationCanceledException).
    member _.Take (cancellation: CancellationToken) : ComputedAhead * float =
        if taken then invalidOp "The input covariances computed ahead were taken already."
        let clock = Stopwatch.StartNew ()
        try task.Wait cancellation
        with :? AggregateException as e when e.InnerExceptions.Count = 1 ->
            Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw ()
        taken <- true
        task.Result, clock.Elapsed.TotalSeconds

    interface IDisposable with
        member _.Dispose () =
            if not disposed then
                disposed <- true
                stop.Cancel ()
                // Its failure, if any, was the run's to report (Take) or does not matter (nobody took it).
                (try task.Wait () with _ -> ())
                if not taken && task.Status = TaskStatus.RanToCompletion then
                    for c in task.Result.Computed.Covariances.Values do (c :> IDisposable).Dispose ()
                    for _, _, outcome in task.Result.Computed.Outcomes do InputStatisticsCache.discard outcome
                stop.Dispose ()
