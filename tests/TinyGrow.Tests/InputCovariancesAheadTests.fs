/// Input covariances computed ahead on a spare core (InputCovariancesAhead, GrowthEngine.StartInputCovariances):
/// the run grows as if it had computed them at its first growth step, and nothing reaches the input statistics
/// cache before a run takes them.
module TinyGrow.Tests.InputCovariancesAheadTests

open System
open System.IO
open System.Threading
open Expecto
open Microsoft.Extensions.Logging
open Microsoft.Extensions.Logging.Abstractions
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Tests.TestUtil
open TinyGrow.Tests.Fixtures

let private model = ModelOptions (Layers = ResizeArray [ spec 1 32 "tanh" true; spec 1 32 "tanh" true ])
// One training thread: the other core of a 2-core machine is the spare one.
let private training = TrainingOptions (Epochs = 1, BatchSize = 50, LearningRate = 0.05, Seed = 7, Threads = 1)
let private growth () =
    GrowthOptions (StepsPerEpoch = 2, UntilEpoch = 1, StatisticsSamples = 200, GammaSearchSamples = 200, NeuronsPerStep = 4, StatisticsFrom = "training")

let private entries (folder: string) = Directory.GetFiles (folder, "input-*.bin")

/// A run of one epoch: every line of metrics.jsonl without its seconds, the model file's bytes, the log's
/// information lines. `ahead`: StartInputCovariances before Run (with `startModel` and `startWith`'s growth options).
let private runStartedFor (startModel: ModelOptions) (data: LoadedDataset) (cache: string | null) (ahead: bool) (g: GrowthOptions) (startWith: GrowthOptions) =
    let logger = RecordingLogger ()
    let dir = Directory.CreateTempSubdirectory("tinygrow-ahead-run-").FullName
    try
        // Two cores, whatever the machine has: one beside the training thread (on one core they take turns).
        use engine = new GrowthEngine (mlpBlockKinds, denseKinds, tiny, logger, InputStatisticsCache = cache, Cores = 2)
        if ahead then engine.StartInputCovariances (data, startModel, training, startWith, torch.CPU)
        engine.Run (data, model, training, g, torch.CPU, dir, CancellationToken.None) |> ignore
        let lines =
            File.ReadAllLines (Path.Combine (dir, "metrics.jsonl"))
            |> Array.map (fun l -> Text.RegularExpressions.Regex.Replace (l, "\"[a-z_]*seconds\":[^,}]*", ""))
        lines, File.ReadAllBytes (Path.Combine (dir, "model.bin")), logger.Messages LogLevel.Information
    finally Directory.Delete (dir, true)

let private run = runStartedFor model

let private computedAhead (messages: string list) = messages |> List.exists (fun m -> m.StartsWith "Input covariances computed ahead")

let tests =
    testList "input covariances computed ahead" [
        test "a run whose input covariances were computed ahead grows bit for bit as one that computes them at its first step" {
            use data = teacherDataset ()
            let g = growth ()
            let atFirstStep, modelAtFirstStep, messages0 = run data null false g g
            Expect.isFalse (computedAhead messages0) "not started: computed at the first step"
            let ahead, modelAhead, messages1 = run data null true g g
            Expect.isTrue (computedAhead messages1) "started: computed ahead"
            Expect.isGreaterThan (atFirstStep |> Array.filter (fun l -> l.Contains "\"growth\"") |> Array.length) 0 "the runs grew"
            Expect.equal ahead atFirstStep "every line of metrics.jsonl (seconds aside) the same"
            Expect.equal modelAhead modelAtFirstStep "the same model, byte for byte"
            // Started for other growth options (another run's): not used, computed at the first step.
            let _, _, messages2 = run data null true g (growth ())
            Expect.isFalse (computedAhead messages2) "a computation for other growth options is not taken"
            // Started for another model (the same layers, another object): not used either.
            let other = ModelOptions (Layers = ResizeArray [ spec 1 32 "tanh" true; spec 1 32 "tanh" true ])
            let _, _, messages3 = runStartedFor other data null true g g
            Expect.isFalse (computedAhead messages3) "a computation for another model is not taken"
        }

        test "computed ahead only with as many cores beside training's threads as it has, on that many threads" {
            use data = teacherDataset ()
            let g = growth ()
            let started (threads: int) (cores: int) =
                let t = TrainingOptions (Epochs = 1, BatchSize = 50, LearningRate = 0.05, Seed = 7, Threads = threads)
                match InputCovariancesAhead.TryStart (NullLogger.Instance, null, mlpBlockKinds, denseKinds, model, t, g, data, torch.CPU, cores) with
                | Some ahead ->
                    use ahead = ahead
                    let result, _ = ahead.Take CancellationToken.None
                    for c in result.Computed.Covariances.Values do (c :> IDisposable).Dispose ()
                    Some result.Threads
                | None -> None
            // MKL's and libtorch's reductions give the same bits only at the same thread count: the run's.
            Expect.equal (started 1 1) None "one core: none left"
            Expect.equal (started 1 2) (Some 1) "one training thread, a core beside it: one thread"
            Expect.equal (started 2 3) None "two training threads, one core beside them: not enough"
            Expect.equal (started 2 4) (Some 2) "two training threads, two cores beside them: two threads"
            Expect.equal (started 1 8) (Some 1) "one training thread on eight cores: still one thread"
        }

        test "computed ahead, an entry reaches the cache only when a run takes it; the next run reads it" {
            use data = teacherDataset ()
            let folder = Directory.CreateTempSubdirectory("tinygrow-ahead-cache-").FullName
            try
                let g = growth ()
                // Computed, then the run refused (the host disposes the engine): nothing written.
                match InputCovariancesAhead.TryStart (NullLogger.Instance, folder, mlpBlockKinds, denseKinds, model, training, g, data, torch.CPU, 2) with
                | Some ahead ->
                    ahead.Completed.Wait ()
                    (ahead :> IDisposable).Dispose ()
                | None -> failtest "two cores, one training thread: computed ahead"
                Expect.isEmpty (entries folder) "a computation no run took writes nothing, even once it has finished"
                let uncached, modelUncached, _ = run data null false g g
                let written, modelWritten, first = run data folder true g g
                Expect.isTrue (first |> List.exists (fun m -> m.Contains "computed ahead: S2" && m.Contains "being written to the cache")) "computed ahead and written when taken"
                Expect.equal (entries folder).Length 1 "one entry"
                let read, modelRead, second = run data folder true g g
                Expect.isTrue (second |> List.exists (fun m -> m.Contains "computed ahead: read from the cache")) "the next run reads it, ahead"
                Expect.equal written uncached "writing the cache changes nothing"
                Expect.equal read uncached "nor does reading it"
                Expect.equal modelWritten modelUncached "the same model"
                Expect.equal modelRead modelUncached "the same model"
            finally Directory.Delete (folder, true)
        }
    ]
