/// Checkpoints and exact resume (DESIGN §7), with the built application as a child process: a run
/// killed with SIGKILL and resumed, a run stopped with SIGTERM, a damaged checkpoint, each compared
/// line by line with an uninterrupted run of the same seed.
module TinyGrow.Host.Tests.CheckpointTests

open System
open System.Diagnostics
open System.IO
open System.Runtime.InteropServices
open System.Text.Json.Nodes
open Expecto
open TinyGrow.Host
open TinyGrow.Host.Tests.TestUtil

let private app = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "..", "artifacts", "tinygrow"))

[<DllImport("libc", EntryPoint = "kill", SetLastError = true)>]
extern int private sendSignal(int pid, int signal)

/// Starts `dotnet tinygrow.dll args` in `folder`, standard error collected into `errors`.
let start (folder: string) (args: string list) (errors: Text.StringBuilder) =
    let info = ProcessStartInfo("dotnet", WorkingDirectory = folder, RedirectStandardError = true, RedirectStandardOutput = true)
    info.ArgumentList.Add(Path.Combine(app, "tinygrow.dll"))
    for name in info.Environment.Keys |> Seq.filter (fun k -> k.StartsWith "TINYGROW_") |> Seq.toList do
        info.Environment.Remove name |> ignore
    for a in args do info.ArgumentList.Add a
    let p =
        match Process.Start info with
        | null -> failwith "could not start dotnet"
        | p -> p
    p.ErrorDataReceived.Add(fun e -> match e.Data with null -> () | line -> lock errors (fun () -> errors.AppendLine line |> ignore))
    p.OutputDataReceived.Add ignore
    p.BeginErrorReadLine()
    p.BeginOutputReadLine()
    p

let finish (p: Process) =
    if not (p.WaitForExit 180_000) then
        p.Kill true
        failtest "the application did not finish in 3 minutes"
    p.WaitForExit()
    p.ExitCode

/// Runs the application to its end; returns (exit code, standard error).
let private runToEnd (folder: string) (args: string list) =
    let errors = Text.StringBuilder()
    use p = start folder args errors
    let code = finish p
    code, string errors

/// Waits until `path` exists (or the process ends); true if it appeared.
let waitFor (p: Process) (path: string) =
    let clock = Stopwatch.StartNew()
    while not (File.Exists path) && not p.HasExited && clock.Elapsed.TotalSeconds < 120.0 do
        Threading.Thread.Sleep 5
    File.Exists path

/// A run small enough for seconds but long enough to be stopped mid-training: 2 epochs of 500
/// batches of 4 random images, an MLP growing from 1/1, a checkpoint after each growth step and
/// every 0.2 s.
let private experiment (data: string) (runId: string) =
    [ "run"; "--Dataset:Name=mnist"; $"--Dataset:Root={data}"
      "--Model:Layers:0:Width=1"; "--Model:Layers:0:MaxWidth=12"; "--Model:Layers:1:Width=1"; "--Model:Layers:1:MaxWidth=12"
      "--Growth:StepsPerEpoch=2"; "--Growth:UntilEpoch=2"; "--Growth:NeuronsPerStep=4"
      "--Growth:StatisticsSamples=256"; "--Growth:GammaSearchSamples=256"
      "--Training:Epochs=2"; "--Training:BatchSize=4"; "--Training:Seed=7"
      "--Checkpoint:EverySeconds=0.2"; "--Device=cpu"; "--Output:Directory=runs"; $"--Output:RunId={runId}" ]

/// metrics.jsonl without its wall-clock fields (`seconds` and every `*_seconds`).
let metricsOf (folder: string) =
    File.ReadAllLines(Path.Combine(folder, "metrics.jsonl"))
    |> Array.map (fun line ->
        match JsonNode.Parse line with
        | :? JsonObject as o ->
            for key in o |> Seq.map (fun kv -> kv.Key) |> Seq.filter (fun k -> k = "seconds" || k.EndsWith "_seconds") |> Seq.toList do
                o.Remove key |> ignore
            o.ToJsonString()
        | _ -> failtest $"not a JSON object: {line}")

/// The test folder with random MNIST-shaped data and the reference (uninterrupted) run.
type private Fixture() =
    let folder = new TempFolder()
    let mnist = Directory.CreateDirectory(folder.File "mnist").FullName
    do EndToEndTests.writeMnist mnist "train" 2000 21
    do EndToEndTests.writeMnist mnist "t10k" 200 22
    let reference =
        lazy (
            let code, errors = runToEnd folder.Path (experiment folder.Path "reference")
            Expect.equal code ExitCodes.Ok $"the uninterrupted run finishes (stderr: {errors})"
            let run = folder.File(Path.Combine("runs", "reference"))
            Expect.isFalse (File.Exists(Path.Combine(run, "checkpoint.bin"))) "a finished run's checkpoints are removed"
            metricsOf run)
    member _.Path = folder.Path
    member _.Reference = reference.Value
    member _.Run(runId: string) = folder.File(Path.Combine("runs", runId))
    interface IDisposable with
        member _.Dispose() = (folder :> IDisposable).Dispose()

let private sameAsReference (fixture: Fixture) (runId: string) =
    let lines = metricsOf (fixture.Run runId)
    // The resume cut the file back to the checkpoint's length, past the schema line: it is still there, once.
    Expect.equal lines[0] TinyGrow.Core.MetricsSchema.Line "the schema line first"
    Expect.equal (lines |> Array.filter (fun l -> l.Contains "\"event\":\"schema\"")).Length 1 "the schema line once"
    Expect.equal lines.Length fixture.Reference.Length "as many metrics lines as the uninterrupted run (no epoch lost or counted twice)"
    Array.iteri2 (fun i (got: string) expected -> Expect.equal got expected $"metrics line {i + 1}") lines fixture.Reference
    Expect.stringContains lines[lines.Length - 1] "\"event\":\"final\"" "the resumed run finished"

let tests =
    let fixture = lazy (new Fixture())
    testSequenced <| testList "checkpoints" [
        test "a run killed with SIGKILL after a checkpoint and resumed ends as the uninterrupted run: widths, metrics lines, accuracy" {
            let f = fixture.Value
            let errors = Text.StringBuilder()
            use p = start f.Path (experiment f.Path "killed") errors
            let partial = f.Run "killed" + ".partial"
            // The second checkpoint (the first is kept as previous): mid-epoch, past the first growth step.
            Expect.isTrue (waitFor p (Path.Combine(partial, "checkpoint.previous.bin"))) $"checkpoints appear (stderr: {errors})"
            p.Kill()
            p.WaitForExit()
            Expect.isTrue (Directory.Exists partial) "killed before it finished"
            Expect.isFalse (File.ReadAllText(Path.Combine(partial, "metrics.jsonl")).Contains "\"final\"" ) "no final line yet"
            let code, resumed = runToEnd f.Path [ "resume"; partial ]
            Expect.equal code ExitCodes.Ok $"resume finishes (stderr: {resumed})"
            Expect.stringContains resumed "Resuming from" "it resumed from a checkpoint"
            Expect.isFalse (Directory.Exists partial) "the folder was renamed when the run finished"
            sameAsReference f "killed"
        }

        test "SIGTERM right after a run's done line changes nothing: exit 0, the run folder final" {
            let f = fixture.Value
            let errors = Text.StringBuilder()
            use p = start f.Path (experiment f.Path "signalled-after-done" @ [ "--Training:Epochs=1" ]) errors
            let clock = Stopwatch.StartNew()
            let isDone () = lock errors (fun () -> (string errors).Contains "Run signalled-after-done done:")
            while not (isDone ()) && not p.HasExited && clock.Elapsed.TotalSeconds < 120.0 do Threading.Thread.Sleep 1
            Expect.isTrue (isDone ()) $"the run finished (stderr: {errors})"
            sendSignal(p.Id, 15) |> ignore // the process may be gone already: then there is nothing to check
            Expect.equal (finish p) ExitCodes.Ok $"exit 0 (stderr: {errors})"
            Expect.isTrue (Directory.Exists(f.Run "signalled-after-done")) "the run folder has its final name"
        }

        test "SIGTERM writes a checkpoint and exits 0; a damaged checkpoint is named and the previous one used; the resumed run ends as the uninterrupted one" {
            let f = fixture.Value
            let errors = Text.StringBuilder()
            use p = start f.Path (experiment f.Path "stopped") errors
            let partial = f.Run "stopped" + ".partial"
            Expect.isTrue (waitFor p (Path.Combine(partial, "checkpoint.previous.bin"))) $"checkpoints appear (stderr: {errors})"
            Expect.equal (sendSignal(p.Id, 15)) 0 "SIGTERM sent"
            let code = finish p
            Expect.equal code ExitCodes.Ok $"SIGTERM: exit 0 (stderr: {errors})"
            Expect.stringContains (string errors) "Checkpoint (stopping)" "a checkpoint was written on the way out"
            let last = File.ReadAllLines(Path.Combine(partial, "metrics.jsonl")) |> Array.last
            Expect.stringContains last "\"event\":\"interrupted\"" "metrics.jsonl says the run stopped"
            Expect.stringContains last "SIGTERM" "and why"
            // The newest checkpoint cut short, as by a full disk or a crash of the storage.
            let newest = Path.Combine(partial, "checkpoint.bin")
            let bytes = File.ReadAllBytes newest
            File.WriteAllBytes(newest, bytes[.. bytes.Length / 2])
            let code, resumed = runToEnd f.Path [ "resume"; partial ]
            Expect.equal code ExitCodes.Ok $"resume finishes (stderr: {resumed})"
            Expect.stringContains resumed $"Checkpoint {newest} not used: checksum mismatch" "the damaged checkpoint is named"
            Expect.stringContains resumed "checkpoint.previous.bin" "the previous one is used"
            sameAsReference f "stopped"
        }

        test "a checkpoint with one byte changed fails its checksum, a FIFO in its place is refused unopened; resume refuses a finished run" {
            let f = fixture.Value
            f.Reference |> ignore
            use folder = new TempFolder()
            let errors = Text.StringBuilder()
            use p = start f.Path (experiment f.Path "flipped") errors
            let partial = f.Run "flipped" + ".partial"
            Expect.isTrue (waitFor p (Path.Combine(partial, "checkpoint.previous.bin"))) $"checkpoints appear (stderr: {errors})"
            p.Kill()
            p.WaitForExit()
            let copy = folder.File "checkpoint.bin"
            File.Copy(Path.Combine(partial, "checkpoint.previous.bin"), copy)
            Expect.equal (TinyGrow.Core.Checkpoint.problem copy) None "an intact checkpoint passes"
            // Bound to its run: beside another run's settings it is refused (resume trained a checkpoint copied in from
            // another run, of another network, into this folder); beside its own it is used.
            File.WriteAllText(folder.File TinyGrow.Core.Checkpoint.settingsFile, "{}")
            let used, refused = TinyGrow.Core.Checkpoint.latest folder.Path
            Expect.equal used None $"another run's checkpoint is not used ({refused})"
            Expect.isTrue (refused |> List.exists (fun (_, why) -> why.Contains "written by another run")) $"it says why ({refused})"
            File.Copy(Path.Combine(partial, TinyGrow.Core.Checkpoint.settingsFile), folder.File TinyGrow.Core.Checkpoint.settingsFile, true)
            // ... and only with the metrics.jsonl it was written beside, or a longer one: cut short (or missing), the
            // resumed run appended after half a line and kept a stale report.
            let metrics = File.ReadAllBytes(Path.Combine(partial, "metrics.jsonl"))
            File.WriteAllBytes(folder.File "metrics.jsonl", metrics[.. 99])
            let used, refused = TinyGrow.Core.Checkpoint.latest folder.Path
            Expect.equal used None $"not with a metrics.jsonl cut short ({refused})"
            Expect.isTrue (refused |> List.exists (fun (_, why) -> why.Contains "metrics.jsonl holds 100 bytes")) $"it says why ({refused})"
            File.WriteAllBytes(folder.File "metrics.jsonl", metrics)
            Expect.equal (fst (TinyGrow.Core.Checkpoint.latest folder.Path)) (Some copy) "beside its own run's settings and metrics it is used"
            let bytes = File.ReadAllBytes copy
            bytes[bytes.Length / 2] <- bytes[bytes.Length / 2] ^^^ 1uy
            File.WriteAllBytes(copy, bytes)
            Expect.equal (TinyGrow.Core.Checkpoint.problem copy) (Some "checksum mismatch (truncated or corrupted)") "one flipped bit is caught"
            Expect.equal (fst (TinyGrow.Core.Checkpoint.latest folder.Path)) None "and not used"
            // A FIFO in its place is refused from its size, never opened (the open would wait for a writer for ever).
            File.Delete copy
            use mkfifo = Diagnostics.Process.Start("mkfifo", [ copy ])
            mkfifo.WaitForExit()
            let check = Threading.Tasks.Task.Run(fun () -> TinyGrow.Core.Checkpoint.latest folder.Path)
            Expect.isTrue (check.Wait(TimeSpan.FromSeconds 30.0)) "latest returns (it did not open the FIFO)"
            Expect.equal (fst check.Result) None "a FIFO is not used"
            Expect.isTrue (snd check.Result |> List.exists (fun (_, why) -> why.Contains "not a regular file")) $"it says why ({snd check.Result})"
            let code, message = runToEnd f.Path [ "resume"; f.Run "reference" ]
            Expect.equal code ExitCodes.BadConfiguration $"a finished run is not resumed ({message})"
            Expect.stringContains message "only an unfinished run" "it says why"
            (f :> IDisposable).Dispose()
        }
    ]
