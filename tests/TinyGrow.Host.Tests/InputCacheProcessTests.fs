/// Issue 23, "two processes filling one entry leave one valid entry", with the built application as child
/// processes: two runs started together on one empty input statistics cache folder both compute the input
/// covariance and write it; the folder then holds one entry and no temporary file, and a third run reads it
/// (checksum, key and tensors checked) without a warning. The races on a single write, many writers at once
/// and readers meanwhile, are InputStatisticsCacheTests' (threads, the same file protocol).
module TinyGrow.Host.Tests.InputCacheProcessTests

open System
open System.IO
open Expecto
open TinyGrow.Host
open TinyGrow.Host.Tests.TestUtil
open TinyGrow.Host.Tests.CheckpointTests

/// One epoch of 250 batches of 4 random 28×28 images, an MLP growing from 1/1 at its first batch (the input
/// junction's covariance: 785², from the cache folder `cache`).
let private experiment (runId: string) =
    [ "run"; "--Dataset:Name=mnist"; "--Dataset:Root=."
      "--Model:Layers:0:Width=1"; "--Model:Layers:0:MaxWidth=8"; "--Model:Layers:1:Width=1"; "--Model:Layers:1:MaxWidth=8"
      "--Growth:StepsPerEpoch=2"; "--Growth:UntilEpoch=1"; "--Growth:NeuronsPerStep=4"
      "--Growth:StatisticsSamples=128"; "--Growth:GammaSearchSamples=128"
      "--Training:Epochs=1"; "--Training:BatchSize=4"; "--Training:Seed=11"
      "--Device=cpu"; "--Output:Directory=runs"; $"--Output:RunId={runId}"; "--Output:CacheDirectory=cache" ]

let private entries (folder: string) =
    if Directory.Exists folder then Directory.GetFiles(folder, "input-*.bin") else [||]

let tests =
    testSequenced <| testList "input statistics cache, two processes" [
        test "two runs started together on one empty cache folder leave one valid entry and no temporary file; a third run reads it" {
            use folder = new TempFolder()
            let mnist = Directory.CreateDirectory(folder.File "mnist").FullName
            EndToEndTests.writeMnist mnist "train" 1000 41
            EndToEndTests.writeMnist mnist "t10k" 100 42
            let errorsA, errorsB = Text.StringBuilder(), Text.StringBuilder()
            use a = start folder.Path (experiment "a") errorsA
            use b = start folder.Path (experiment "b") errorsB
            let codeA, codeB = finish a, finish b
            Expect.equal codeA ExitCodes.Ok $"the first run ends well ({errorsA})"
            Expect.equal codeB ExitCodes.Ok $"the second run ends well ({errorsB})"
            for name, errors in [ "first", string errorsA; "second", string errorsB ] do
                Expect.stringContains errors "written to the cache" $"the {name} run computed the entry and wrote it: {errors}"
            let cache = folder.File "cache"
            Expect.equal (entries cache).Length 1 "one entry"
            Expect.isEmpty (Directory.GetFiles(cache, "*", SearchOption.AllDirectories) |> Array.filter (fun f -> not (f.EndsWith ".bin")))
                "no temporary file left"
            let errorsC = Text.StringBuilder()
            use c = start folder.Path (experiment "c") errorsC
            Expect.equal (finish c) ExitCodes.Ok $"the third run ends well ({errorsC})"
            let third = string errorsC
            Expect.stringContains third "read from the cache" $"the third run reads the entry: {third}"
            let cacheWarnings =
                third.Split '\n' |> Array.filter (fun line -> line.Contains "warn:" && line.Contains "cache")
            Expect.isEmpty cacheWarnings "without a warning about the entry"
            // The entry the third run read grows the same network as the runs that computed it.
            let modelOf (run: string) = File.ReadAllBytes(folder.File(Path.Combine("runs", run, "model.bin")))
            Expect.equal (modelOf "c") (modelOf "a") "the same model, byte for byte, as the run that computed the entry"
        }
    ]
