/// Issue 21 §2, "one run folder, one writer", with the built application as child processes: a
/// second writer of a run folder is refused while the first holds its lock; a resume whose settings
/// differ from the run's in a key that shapes the result is refused, naming the keys; model.bin's
/// checksum and model.json's InputShape and kinds are checked by `export`.
module TinyGrow.Host.Tests.RunFolderWriterTests

open System
open System.Diagnostics
open System.IO
open System.Runtime.InteropServices
open System.Text.Json.Nodes
open Expecto
open TinyGrow.Host
open TinyGrow.Host.Commands
open TinyGrow.Host.Tests.TestUtil
open TinyGrow.Host.Tests.CheckpointTests

[<DllImport("libc", EntryPoint = "kill", SetLastError = true)>]
extern int private sendSignal(int pid, int signal)

let private SIGSTOP, SIGCONT = 19, 18 // Linux x86-64 and arm64

/// 3 epochs of 500 batches of 4 random images, checkpoints every 0.2 s: long enough to be caught running.
let private experiment (runId: string) =
    [ "run"; "--Dataset:Name=mnist"; "--Dataset:Root=."
      "--Model:Layers:0:Width=1"; "--Model:Layers:0:MaxWidth=12"; "--Model:Layers:1:Width=1"; "--Model:Layers:1:MaxWidth=12"
      "--Growth:StepsPerEpoch=2"; "--Growth:UntilEpoch=2"; "--Growth:NeuronsPerStep=4"
      "--Growth:StatisticsSamples=256"; "--Growth:GammaSearchSamples=256"
      "--Training:Epochs=3"; "--Training:BatchSize=4"; "--Training:Seed=7"
      "--Checkpoint:EverySeconds=0.2"; "--Device=cpu"; "--Output:Directory=runs"; $"--Output:RunId={runId}" ]

let private runToEnd (folder: string) (args: string list) =
    let errors = Text.StringBuilder()
    use p = start folder args errors
    let code = finish p
    code, string errors

type private Fixture() =
    let folder = new TempFolder()
    let mnist = Directory.CreateDirectory(folder.File "mnist").FullName
    do EndToEndTests.writeMnist mnist "train" 2000 31
    do EndToEndTests.writeMnist mnist "t10k" 200 32
    member _.Path = folder.Path
    member _.Partial = folder.File(Path.Combine("runs", "w.partial"))
    member _.Final = folder.File(Path.Combine("runs", "w"))
    interface IDisposable with
        member _.Dispose() = (folder :> IDisposable).Dispose()

/// Waits until the lock file of `folder` names `pid` (or the process ends).
let private waitForHolder (p: Process) (folder: string) =
    let clock = Stopwatch.StartNew()
    let holder () = RunLock.HolderPid(Path.Combine(folder, RunLock.FileName))
    while holder () <> Nullable p.Id && not p.HasExited && clock.Elapsed.TotalSeconds < 120.0 do
        Threading.Thread.Sleep 20
    holder () = Nullable p.Id

let private everyLineIsJson (folder: string) =
    for line in File.ReadAllLines(Path.Combine(folder, "metrics.jsonl")) do
        Expect.isTrue (try JsonNode.Parse line |> ignore; true with _ -> false) $"one JSON object per line, none fused: {line}"

let tests =
    let fixture = lazy (new Fixture())
    testSequenced <| testList "one run folder, one writer" [
        test "a resume of a folder that a run or another resume is writing is refused with exit 2, naming the holder's pid; the writer goes on" {
            let f = fixture.Value
            let errors = Text.StringBuilder()
            use run = start f.Path (experiment "w") errors
            Expect.isTrue (waitFor run (Path.Combine(f.Partial, "checkpoint.previous.bin"))) $"the run checkpoints (stderr: {errors})"
            // Paused (SIGSTOP), so that it is still writing the folder however fast it would train.
            Expect.equal (sendSignal(run.Id, SIGSTOP)) 0 "SIGSTOP sent"
            let code, refused = runToEnd f.Path [ "resume"; f.Partial ]
            Expect.equal code ExitCodes.BadConfiguration $"a resume while the run writes: exit 2 ({refused})"
            Expect.stringContains refused $"process {run.Id}" "names the running run's pid"
            Expect.stringContains refused "run.lock" "and its lock file"
            Expect.isFalse run.HasExited "the run was not disturbed"
            run.Kill()
            run.WaitForExit()
            // The killed run's lock went with its process: a resume takes the folder over...
            let resumeErrors = Text.StringBuilder()
            use first = start f.Path [ "resume"; f.Partial ] resumeErrors
            Expect.isTrue (waitForHolder first f.Partial) $"the first resume holds the folder (stderr: {resumeErrors})"
            Expect.equal (sendSignal(first.Id, SIGSTOP)) 0 "SIGSTOP sent"
            // ...and a second resume is refused while it runs.
            let code, refused = runToEnd f.Path [ "resume"; f.Partial ]
            Expect.equal code ExitCodes.BadConfiguration $"a second resume: exit 2 ({refused})"
            Expect.stringContains refused $"process {first.Id}" "names the first resume's pid"
            Expect.isFalse first.HasExited "the first resume goes on"
            Expect.equal (sendSignal(first.Id, SIGCONT)) 0 "SIGCONT sent"
            // Stopped once it trains (a stop during the dataset's load exits 130 with nothing written).
            let clock = Stopwatch.StartNew()
            while not (lock resumeErrors (fun () -> resumeErrors.ToString().Contains "Resuming from")) && not first.HasExited && clock.Elapsed.TotalSeconds < 120.0 do
                Threading.Thread.Sleep 20
            Expect.equal (sendSignal(first.Id, 15)) 0 "SIGTERM sent"
            Expect.equal (finish first) ExitCodes.Ok $"the first resume stops at a checkpoint (stderr: {resumeErrors})"
            everyLineIsJson f.Partial
        }

        test "a resume whose config.json or command line changes a key that shapes the result is refused, naming the keys; nothing is written; safe keys pass" {
            let f = fixture.Value
            Expect.isTrue (File.Exists(Path.Combine(f.Partial, "checkpoint.bin"))) "the stopped run has a checkpoint"
            let untouched = [ "metrics.jsonl"; "checkpoint.bin"; "config.json"; RunSettingsRecord.FileName ] |> List.map (fun n -> n, File.ReadAllBytes(Path.Combine(f.Partial, n)))
            let refusedWith (args: string list) (words: string list) =
                let code, message = runToEnd f.Path ([ "resume"; f.Partial ] @ args)
                Expect.equal code ExitCodes.BadConfiguration $"refused with exit 2 ({message})"
                for w in words do Expect.stringContains message w $"names {w}"
            refusedWith [ "--Training:Epochs=5" ] [ "Training:Epochs = 5 (the run: 3)" ]
            refusedWith [ "--Model:Layers:0:MaxWidth=8"; "--Growth:Strategy=gradmax" ] [ "Model:Layers:0:MaxWidth = 8 (the run: 12)"; "Growth:Strategy = gradmax (the run: tiny)"; "2 setting(s)" ]
            let config = Path.Combine(f.Partial, "config.json")
            let text = File.ReadAllText config
            let edited = JsonNode.Parse text |> nonNull
            (edited["Dataset"] |> nonNull)["TrainSamples"] <- JsonValue.Create 1000
            File.WriteAllText(config, edited.ToJsonString())
            refusedWith [] [ "Dataset:TrainSamples = 1000 (the run: 0)"; "config.json" ]
            File.WriteAllText(config, text)
            let record = Path.Combine(f.Partial, RunSettingsRecord.FileName)
            let recorded = File.ReadAllText record
            File.WriteAllText(record, recorded.Replace("\"Training:Epochs\": \"3\"", "\"Training:Epochs\": \"5\""))
            refusedWith [ "--Training:Epochs=5" ] [ RunSettingsRecord.FileName; "damaged or was edited" ]
            File.WriteAllText(record, recorded)
            for name, bytes in untouched do
                Expect.equal (File.ReadAllBytes(Path.Combine(f.Partial, name))) bytes $"{name} unchanged by the refusals"
            let code, resumed =
                runToEnd f.Path [ "resume"; f.Partial; "--Checkpoint:EverySeconds=5"; "--Output:Progress=plain"; "--Logging:LogLevel:Default=Information" ]
            Expect.equal code ExitCodes.Ok $"checkpoint, output and logging keys may change ({resumed})"
            Expect.isTrue (Directory.Exists f.Final) "the run finished"
            Expect.isFalse (File.Exists(Path.Combine(f.Final, RunLock.FileName))) "a finished run keeps no lock file"
            everyLineIsJson f.Final
        }

        test "export refuses model.bin with 4 flipped bytes, an absurd InputShape and a kind edited to lstm (exit 2, the file named, nothing written); a model.json without a checksum exports with a warning" {
            let f = fixture.Value
            let run = f.Final
            Expect.isTrue (Directory.Exists run) "the finished run of the previous test"
            let bin, json, pt = Path.Combine(run, "model.bin"), Path.Combine(run, "model.json"), Path.Combine(run, "model.pt")
            let original, text = File.ReadAllBytes bin, File.ReadAllText json
            let export () =
                File.Delete pt
                use out = new StringWriter()
                use err = new StringWriter()
                let code = ExportCommand.Execute(run, out, err)
                code, string err
            let refused (file: string) (words: string) =
                let code, message = export ()
                Expect.equal code ExitCodes.BadConfiguration $"exit 2 ({message})"
                Expect.stringContains message file $"names {file}"
                Expect.stringContains message words "says why"
                Expect.isFalse (File.Exists pt) "no model.pt written"
                Expect.isEmpty (Directory.GetFiles(run, "*.tmp")) "no temporary file left"
            let flipped = Array.copy original
            for i in flipped.Length - 4 .. flipped.Length - 1 do flipped[i] <- flipped[i] ^^^ 0x7Fuy
            File.WriteAllBytes(bin, flipped)
            refused bin "SHA-256"
            File.WriteAllBytes(bin, original)
            let edit (change: JsonObject -> unit) =
                let doc = (JsonNode.Parse text |> nonNull).AsObject()
                change doc
                File.WriteAllText(json, doc.ToJsonString())
            edit (fun doc -> doc["InputShape"] <- JsonArray(JsonValue.Create 1L, JsonValue.Create 100000L, JsonValue.Create 100000L))
            refused json "InputShape [1, 100000, 100000]"
            let firstLayer (doc: JsonObject) =
                match doc["Blocks"] with
                | null -> failtest "no Blocks"
                | blocks ->
                    match blocks.AsArray()[0] with
                    | null -> failtest "no block"
                    | block ->
                        match block["Layers"] with
                        | null -> failtest "no Layers"
                        | layers -> layers.AsArray()[0] |> nonNull
            edit (fun doc -> (firstLayer doc)["Kind"] <- JsonValue.Create "lstm")
            refused json "'lstm'"
            edit (fun doc -> doc.Remove "ModelBinSha256" |> ignore)
            let code, warning = export ()
            Expect.equal code ExitCodes.Ok $"a model.json without a checksum still exports ({warning})"
            Expect.stringContains warning "records no SHA-256" "with a warning"
            File.WriteAllText(json, text)
            let code, message = export ()
            Expect.equal code ExitCodes.Ok $"the restored folder exports ({message})"
            (f :> IDisposable).Dispose()
        }
    ]
