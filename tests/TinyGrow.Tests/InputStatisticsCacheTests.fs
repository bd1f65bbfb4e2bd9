/// The input statistics cache (issue 23): a hit gives what a cold computation gives, bit for bit; a
/// change of the inputs, their augmentation, their count or dtype, or of the junction misses; a
/// damaged entry is refused, recomputed and rewritten; writers racing on one entry leave one good entry.
module TinyGrow.Tests.InputStatisticsCacheTests

open System
open System.IO
open System.Text.Json
open System.Threading
open System.Threading.Tasks
open Expecto
open Microsoft.Extensions.Logging
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Tests.TestUtil
open TinyGrow.Tests.Fixtures

let private f32 = torch.ScalarType.Float32

let private withFolder (f: string -> unit) =
    let dir = Directory.CreateTempSubdirectory("tinygrow-input-cache-").FullName
    try f dir finally Directory.Delete (dir, true)

let private options = GrowthOptions (RowsPerDimension = 0, RelativeThreshold = 0.0)

/// A compute that must not run (a hit).
let private notComputed () : InputWhitening.InputCovariance = failwith "computed although the entry was in the cache"

let private entries (folder: string) = Directory.GetFiles (folder, "input-*.bin")

/// mkfifo(3): a named pipe, which a reader that opens it waits on until a writer comes.
[<Runtime.InteropServices.DllImport ("libc", SetLastError = true)>]
extern int mkfifo (string path, uint32 mode)

/// Training samples plus a little noise drawn from the generator: an augmentation.
type private NoisyPipeline () =
    interface IInputPipeline with
        member _.Inputs samples = samples.alias ()
        member _.AugmentedInputs (samples, generator) =
            use noise = torch.randn (samples.shape, dtype = samples.dtype, generator = generator)
            samples + noise * 0.1

let private growthLines (dir: string) =
    File.ReadAllLines (Path.Combine (dir, "metrics.jsonl"))
    |> Array.map (fun l -> JsonDocument.Parse(l).RootElement)
    |> Array.filter (fun e -> e.GetProperty("event").GetString () = "growth")
    |> Array.map (fun e -> [ for name in [ "junction"; "added"; "width"; "gamma"; "predicted_decrease"; "measured_decrease"; "bottleneck" ] -> e.GetProperty(name).GetRawText () ])

let tests =
    testList "input statistics cache" [
        test "a hit gives the cold computation's S2 and whitening bit for bit, and the same proposal, without computing" {
            use net = mlp 1101L f64 6 [ 4; 3 ] "tanh" 3
            use x = randn 1102L 300L 6L
            use y = labels 1103L 300L 3L
            use cold = InputWhitening.inputCovariance net 0 options null x y
            withFolder (fun folder ->
                let key = InputStatisticsCache.keyOf net 0 options x
                let written, first = InputStatisticsCache.getOrCompute folder key x (fun w -> failtest w) InputStatisticsCache.Now (fun () -> InputWhitening.inputCovariance net 0 options null x y)
                use _ = written
                match first with
                | InputStatisticsCache.Computed (file, _) -> Expect.equal file (InputStatisticsCache.entryPath folder key) "written under its key's hash"
                | other -> failtest $"an empty cache computes and writes ({other})"
                let hit, second = InputStatisticsCache.getOrCompute folder key x (fun w -> failtest w) InputStatisticsCache.Now notComputed
                use hit = hit
                match second with
                | InputStatisticsCache.Hit _ -> ()
                | other -> failtest $"the second time is a hit ({other})"
                Expect.equal hit.S2.dtype cold.S2.dtype "S2's dtype"
                Expect.equal hit.Whitening.dtype cold.Whitening.dtype "W's dtype"
                Expect.isTrue (identical hit.S2 cold.S2) "S2 bit for bit"
                Expect.isTrue (identical hit.Whitening cold.Whitening) "W bit for bit"
                Expect.equal hit.Samples cold.Samples "samples"
                Expect.equal hit.Path cold.Path "how it was factorised"
                use stats = (StatisticsPass.statisticsFor [| 0 |] 0 null net x y 300L)[0]
                use fromCold = tiny.Propose (GrowthRequest (stats, net.Junctions[0], 3, options, null, Whitening = cold.Whitening))
                use fromHit = tiny.Propose (GrowthRequest (stats, net.Junctions[0], 3, options, null, Whitening = hit.Whitening))
                Expect.isGreaterThan fromCold.Count 0 "neurons proposed"
                Expect.sequenceEqual fromHit.NeuronScores fromCold.NeuronScores "λ_k² bit for bit"
                Expect.isTrue (identical fromHit.FanIn fromCold.FanIn && identical fromHit.FanOut fromCold.FanOut) "α and ω bit for bit")
        }

        test "the key changes with the inputs (one value, their count, their dtype, an augmentation), with the junction's rows and with the factor kind" {
            use net = mlp 1111L f64 6 [ 4; 3 ] "tanh" 3
            use x = randn 1112L 300L 6L
            let key (n: Network) (t: torch.Tensor) = (InputStatisticsCache.keyOf n 0 options t).Hash
            let baseline = key net x
            Expect.equal (key net (x.clone ())) baseline "the same inputs, the same key"
            use other = mlp 1119L f64 6 [ 4; 3 ] "tanh" 3
            Expect.equal (key other x) baseline "other weights read the same input: the same key"
            use changed = x.clone ()
            let bumped = (use value = changed[17L, 3L] in value.add_ ((1e-9).ToScalar ()))
            bumped.Dispose ()
            Expect.notEqual (key net changed) baseline "one value changed (a changed dataset file)"
            Expect.notEqual (key net (x.narrow (0L, 0L, 299L))) baseline "one sample fewer (another StatisticsSamples)"
            use noise = randn 1113L 300L 6L
            use augmented = x + noise * 0.01
            Expect.notEqual (key net augmented) baseline "augmented inputs"
            use net32 = mlp 1111L f32 6 [ 4; 3 ] "tanh" 3
            use x32 = x.to_type f32
            Expect.notEqual (key net32 x32) baseline "float32 inputs"
            use noBias = mlpWith false 1111L f64 6 [ 4; 3 ] "tanh" 3
            Expect.notEqual (key noBias x) baseline "a junction whose A has no bias has other rows"
            Expect.notEqual (InputStatisticsCache.keyOf net 0 (GrowthOptions (RowsPerDimension = 0, EigenCutoff = 1e-6)) x).Hash baseline "another EigenCutoff"
            Expect.notEqual (InputStatisticsCache.keyOf net 0 (GrowthOptions (RowsPerDimension = 0, InputFactor = "randomized")) x).Hash baseline "the randomised factor (an exact entry is never read for it)"
        }

        test "a damaged entry (a flipped byte, cut short, bytes added, another key inside, a link to /dev/zero, a FIFO) is refused with a warning, computed again and rewritten" {
            use net = mlp 1121L f64 6 [ 4; 3 ] "tanh" 3
            use x = randn 1122L 300L 6L
            use y = labels 1123L 300L 3L
            use cold = InputWhitening.inputCovariance net 0 options null x y
            let key = InputStatisticsCache.keyOf net 0 options x
            let damages : (string * (string -> unit)) list =
                [ "a flipped byte", (fun path ->
                      let bytes = File.ReadAllBytes path
                      bytes[bytes.Length / 2] <- bytes[bytes.Length / 2] ^^^ 0x10uy
                      File.WriteAllBytes (path, bytes))
                  "cut short", (fun path ->
                      let bytes = File.ReadAllBytes path
                      File.WriteAllBytes (path, bytes[.. bytes.Length / 3]))
                  "cut to 10 bytes", (fun path -> File.WriteAllBytes (path, (File.ReadAllBytes path)[.. 9]))
                  "bytes added", (fun path -> File.AppendAllText (path, "x"))
                  // Not files at all (a shared folder): read to their end, /dev/zero filled memory until the run died
                  // (OutOfMemoryException), and opening a FIFO waited for a writer for ever.
                  "a symbolic link to /dev/zero", (fun path ->
                      File.Delete path
                      File.CreateSymbolicLink (path, "/dev/zero") |> ignore)
                  "a FIFO", (fun path ->
                      File.Delete path
                      if mkfifo (path, 0o600u) <> 0 then failtest $"mkfifo {path} failed")
                  "another key's entry under this name", (fun path ->
                      use otherX = randn 1124L 300L 6L
                      let otherKey = InputStatisticsCache.keyOf net 0 options otherX
                      use otherC = InputWhitening.inputCovariance net 0 options null otherX y
                      let folder = match Path.GetDirectoryName path with null -> "." | d -> d
                      InputStatisticsCache.write folder otherKey otherC
                      File.Move (InputStatisticsCache.entryPath folder otherKey, path, true)) ]
            for what, damage in damages do
                withFolder (fun folder ->
                    InputStatisticsCache.write folder key cold
                    let path = InputStatisticsCache.entryPath folder key
                    damage path
                    match InputStatisticsCache.read folder key with
                    | Error _ -> ()
                    | Ok found -> failtest $"{what}: read as {found}"
                    let warnings = ResizeArray<string> ()
                    let mutable computed = 0
                    let c, outcome =
                        InputStatisticsCache.getOrCompute folder key x warnings.Add InputStatisticsCache.Now (fun () ->
                            computed <- computed + 1
                            InputWhitening.inputCovariance net 0 options null x y)
                    use _ = c
                    Expect.equal computed 1 $"{what}: computed again"
                    Expect.equal warnings.Count 1 $"{what}: one warning"
                    Expect.stringContains warnings[0] path $"{what}: the warning names the entry"
                    Expect.stringContains warnings[0] "not used" $"{what}: and says it is not used"
                    Expect.isTrue (match outcome with InputStatisticsCache.Computed _ -> true | _ -> false) $"{what}: rewritten ({outcome})"
                    Expect.isTrue (identical c.Whitening cold.Whitening) $"{what}: the recomputed W is the cold one"
                    match InputStatisticsCache.read folder key with
                    | Ok (Some again) ->
                        use again = again
                        Expect.isTrue (identical again.S2 cold.S2 && identical again.Whitening cold.Whitening) $"{what}: the rewritten entry is good"
                    | other -> failtest $"{what}: the rewritten entry reads as {other}")
        }

        test "writers racing on one entry leave one good entry and no temporary file; a reader meanwhile sees none or a good one" {
            use net = mlp 1131L f64 6 [ 4; 3 ] "tanh" 3
            use x = randn 1132L 300L 6L
            use y = labels 1133L 300L 3L
            use cold = InputWhitening.inputCovariance net 0 options null x y
            let key = InputStatisticsCache.keyOf net 0 options x
            withFolder (fun folder ->
                let writers = 6
                let rounds = 5
                use start = new Barrier (writers + 1)
                let mutable bad = 0
                let mutable readsGood = 0
                let write () =
                    start.SignalAndWait ()
                    for _ in 1 .. rounds do InputStatisticsCache.write folder key cold
                let read () =
                    start.SignalAndWait ()
                    for _ in 1 .. 4 * rounds do
                        match InputStatisticsCache.read folder key with
                        | Ok None -> ()
                        | Ok (Some c) ->
                            use c = c
                            if identical c.Whitening cold.Whitening && identical c.S2 cold.S2 then Interlocked.Increment &readsGood |> ignore
                            else Interlocked.Increment &bad |> ignore
                        | Error _ -> Interlocked.Increment &bad |> ignore
                let tasks = [| for _ in 1 .. writers -> Task.Run write |] |> Array.append [| Task.Run read |]
                Task.WaitAll tasks
                Expect.equal bad 0 "no reader saw a partial or damaged entry"
                Expect.equal (entries folder) [| InputStatisticsCache.entryPath folder key |] "one entry"
                Expect.isEmpty (Directory.GetFiles (folder, "*.tmp", SearchOption.AllDirectories)) "no temporary file left"
                match InputStatisticsCache.read folder key with
                | Ok (Some c) ->
                    use c = c
                    Expect.isTrue (identical c.Whitening cold.Whitening && identical c.S2 cold.S2) "the entry is good"
                | other -> failtest $"the entry reads as {other}")
        }

        test "engine: a run with the cache grows as one without it; a second run (another seed too) reads it; changed inputs, sample count or augmentation miss" {
            let model = ModelOptions (Layers = ResizeArray [ spec 1 32 "tanh" true; spec 1 32 "tanh" true ])
            let training seed = TrainingOptions (Epochs = 1, BatchSize = 50, LearningRate = 0.05, Seed = seed)
            let growth (samples: int) (from: string) =
                GrowthOptions (StepsPerEpoch = 2, UntilEpoch = 1, StatisticsSamples = samples, GammaSearchSamples = 200, NeuronsPerStep = 4, StatisticsFrom = from)
            let run (data: LoadedDataset) (folder: string | null) (seed: int64) (g: GrowthOptions) =
                let logger = RecordingLogger ()
                let dir = Directory.CreateTempSubdirectory("tinygrow-input-cache-run-").FullName
                try
                    use engine = new GrowthEngine (mlpBlockKinds, denseKinds, tiny, logger, InputStatisticsCache = folder)
                    engine.Run (data, model, training seed, g, torch.CPU, dir, CancellationToken.None) |> ignore
                    let lines = growthLines dir
                    let inputLines = logger.Messages LogLevel.Information |> List.filter (fun m -> m.StartsWith "Input covariance of junction 0")
                    Expect.equal inputLines.Length 1 "one input covariance line"
                    Expect.isEmpty (logger.Messages LogLevel.Warning |> List.filter (fun m -> m.Contains "cache")) "no warning about the cache"
                    lines, inputLines.Head
                finally Directory.Delete (dir, true)
            use data = teacherDataset ()
            withFolder (fun folder ->
                let uncached, line0 = run data null 1L (growth 200 "pass")
                Expect.stringContains line0 "not cached" "no folder: not cached"
                let written, line1 = run data folder 1L (growth 200 "pass")
                Expect.stringContains line1 "written to the cache" "first run writes"
                Expect.equal (entries folder).Length 1 "one entry"
                let read, line2 = run data folder 1L (growth 200 "pass")
                Expect.stringContains line2 "read from the cache" "second run reads"
                Expect.isNonEmpty uncached "the runs grew"
                Expect.equal written uncached "writing the cache changes no growth step"
                Expect.equal read uncached "reading it changes none: the same γ, neurons, decreases, bit for bit"
                let _, otherSeed = run data folder 2L (growth 200 "pass")
                Expect.stringContains otherSeed "read from the cache" "another seed reads the same entry"
                let _, fewer = run data folder 1L (growth 150 "pass")
                Expect.stringContains fewer "written to the cache" "another sample count misses"
                Expect.equal (entries folder).Length 2 "and adds an entry"
                let given = growth 200 "pass"
                given.InputStatisticsSamples <- 250
                let _, givenLine = run data folder 1L given
                Expect.stringContains givenLine "S2 on 250 samples" "InputStatisticsSamples sets the input covariance's samples"
                Expect.stringContains givenLine "written to the cache" "and another count misses"
                Expect.equal (entries folder).Length 3 "and adds an entry"
                // One training value changed, among the samples the statistics are taken on (a changed file).
                use changedTrain = data.Train.Samples.clone ()
                let bumped = (use value = changedTrain[5L, 2L] in value.add_ ((0.5).ToScalar ()))
                bumped.Dispose ()
                use changed = new LoadedDataset ("teacher", new DataSplit (changedTrain.alias (), data.Train.Labels.alias ()), new DataSplit (data.Test.Samples.alias (), data.Test.Labels.alias ()), data.InputShape, data.Classes, StoredInputs.Instance)
                let _, changedLine = run changed folder 1L (growth 200 "pass")
                Expect.stringContains changedLine "written to the cache" "a changed training sample misses"
                Expect.equal (entries folder).Length 4 "and adds an entry"
                // Statistics from the training batches see the inputs augmented: another key than plain ones.
                let _, plainTraining = run data folder 1L (growth 200 "training")
                Expect.stringContains plainTraining "read from the cache" "not augmented, windows read the pass's entry (same inputs)"
                use augmenting = new LoadedDataset ("teacher", new DataSplit (data.Train.Samples.alias (), data.Train.Labels.alias ()), new DataSplit (data.Test.Samples.alias (), data.Test.Labels.alias ()), data.InputShape, data.Classes, NoisyPipeline ())
                let _, augmentedLine = run augmenting folder 1L (growth 200 "training")
                Expect.stringContains augmentedLine "written to the cache" "augmented inputs miss"
                let _, augmentedAgain = run augmenting folder 3L (growth 200 "training")
                Expect.stringContains augmentedAgain "read from the cache" "the augmentation drawn for the statistics is the same for every seed")
        }

        test "written in the background, the entry is the one written in the caller's time: a hit bit for bit once written, a warning when it cannot be" {
            use net = mlp 1151L f64 6 [ 4; 3 ] "tanh" 3
            use x = randn 1152L 300L 6L
            use y = labels 1153L 300L 3L
            use cold = InputWhitening.inputCovariance net 0 options null x y
            withFolder (fun folder ->
                let key = InputStatisticsCache.keyOf net 0 options x
                let c, outcome = InputStatisticsCache.getOrCompute folder key x (fun w -> failtest w) InputStatisticsCache.Background (fun () -> InputWhitening.inputCovariance net 0 options null x y)
                match outcome with
                | InputStatisticsCache.Writing (file, _, writing) ->
                    Expect.equal file (InputStatisticsCache.entryPath folder key) "under its key's hash"
                    // On a thread of its own: on the thread pool a write of seconds held one of its few threads, and the
                    // growth step's strategy call (a pool task) waited ~0.5 s for another (notebook 2026-12-06-thread-pool-wait).
                    Expect.isTrue (writing.CreationOptions.HasFlag Threading.Tasks.TaskCreationOptions.LongRunning) "the write does not take a thread-pool thread"
                    // The run's tensors are its own: disposing them does not touch the write.
                    (c :> IDisposable).Dispose ()
                    Expect.isGreaterThanOrEqual writing.Result 0.0 "the write reports its seconds"
                | other -> failtest $"an empty cache computes and writes in the background ({other})"
                let hit, again = InputStatisticsCache.getOrCompute folder key x (fun w -> failtest w) InputStatisticsCache.Background notComputed
                use hit = hit
                Expect.isTrue (match again with InputStatisticsCache.Hit _ -> true | _ -> false) $"then a hit ({again})"
                Expect.isTrue (identical hit.S2 cold.S2 && identical hit.Whitening cold.Whitening) "S2 and W bit for bit"
                let file = Path.Combine (folder, "a-file")
                File.WriteAllText (file, "not a folder")
                let warnings = Collections.Concurrent.ConcurrentQueue<string> ()
                let c, outcome = InputStatisticsCache.getOrCompute (Path.Combine (file, "cache")) key x warnings.Enqueue InputStatisticsCache.Background (fun () -> InputWhitening.inputCovariance net 0 options null x y)
                use _ = c
                match outcome with
                | InputStatisticsCache.Writing (_, _, writing) -> Expect.isTrue (Double.IsNaN writing.Result) "a failed write reports NaN seconds"
                | other -> failtest $"written in the background ({other})"
                Expect.equal warnings.Count 1 "one warning, from the write"
                Expect.stringContains (Seq.head warnings) "Output:CacheDirectory" "names the setting")
        }

        test "a cache folder that cannot be written costs a warning, not the run" {
            use net = mlp 1141L f64 6 [ 4; 3 ] "tanh" 3
            use x = randn 1142L 300L 6L
            use y = labels 1143L 300L 3L
            withFolder (fun folder ->
                let file = Path.Combine (folder, "a-file")
                File.WriteAllText (file, "not a folder")
                let warnings = ResizeArray<string> ()
                let key = InputStatisticsCache.keyOf net 0 options x
                let c, outcome = InputStatisticsCache.getOrCompute (Path.Combine (file, "cache")) key x warnings.Add InputStatisticsCache.Now (fun () -> InputWhitening.inputCovariance net 0 options null x y)
                use _ = c
                Expect.isTrue (match outcome with InputStatisticsCache.NotKept _ -> true | _ -> false) $"not kept ({outcome})"
                Expect.equal warnings.Count 1 "one warning"
                Expect.stringContains warnings[0] "Output:CacheDirectory" "names the setting")
        }
    ]
