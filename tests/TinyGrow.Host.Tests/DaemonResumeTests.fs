/// A daemon killed with SIGKILL mid-job (after a checkpoint): its run stops itself, and the daemon
/// that takes the job over (the same folder queue restarted; another daemon on the PostgreSQL queue
/// once the lease has expired) resumes the run folder from its checkpoint, through `tinygrow
/// resume`, and the job ends with the metrics lines of an uninterrupted run of the same seed; also when the
/// job's status file (which names the run folder) was damaged in between.
module TinyGrow.Host.Tests.DaemonResumeTests

open System
open System.Diagnostics
open System.IO
open System.Threading
open Expecto
open Microsoft.Extensions.Logging.Abstractions
open TinyGrow.Host
open TinyGrow.Host.Daemon
open TinyGrow.Host.Tests.TestUtil

let private app = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "..", "artifacts", "tinygrow", "tinygrow.dll"))

/// CheckpointTests' run as an experiment file: 6 epochs of 500 batches of 4 random images, an MLP
/// growing from 1/1 in the first two, a checkpoint every 0.2 s and after each growth step. The epochs
/// after growth leave the orphaned run seconds to notice its daemon's death (ParentWatch polls every
/// 0.25 s) before it could finish: with 2 epochs a loaded machine let it finish first.
let private experiment (data: string) =
    $$"""{ "Dataset": { "Name": "mnist", "Root": "{{data}}" },
          "Model": { "Layers": [ { "Width": 1, "MaxWidth": 12 }, { "Width": 1, "MaxWidth": 12 } ] },
          "Growth": { "StepsPerEpoch": 2, "UntilEpoch": 2, "NeuronsPerStep": 4, "StatisticsSamples": 256, "GammaSearchSamples": 256 },
          "Training": { "Epochs": 6, "BatchSize": 4, "Seed": 7 },
          "Checkpoint": { "EverySeconds": 0.2 },
          "Device": "cpu" }"""

type private Fixture() =
    let folder = new TempFolder()
    let mnist = Directory.CreateDirectory(folder.File "mnist").FullName
    do EndToEndTests.writeMnist mnist "train" 2000 21
    do EndToEndTests.writeMnist mnist "t10k" 200 22
    let text = experiment folder.Path
    do File.WriteAllText(folder.File "experiment.json", text)
    let reference =
        lazy (
            let errors = Text.StringBuilder()
            use p = CheckpointTests.start folder.Path [ "run"; "--experiment"; folder.File "experiment.json"; "--Output:Directory=reference"; "--Output:RunId=reference" ] errors
            Expect.equal (CheckpointTests.finish p) ExitCodes.Ok $"the uninterrupted run finishes (stderr: {errors})"
            CheckpointTests.metricsOf (folder.File "reference/reference"))
    member _.Path = folder.Path
    member _.File(name: string) = folder.File name
    member _.Experiment = text
    member _.Reference = reference.Value
    interface IDisposable with
        member _.Dispose() = (folder :> IDisposable).Dispose()

/// The processes started with TINYGROWD_PID=<daemon> (its runs), from /proc.
let private runsOf (daemon: int) =
    Directory.GetDirectories "/proc"
    |> Array.choose (fun d ->
        try
            let environment = File.ReadAllText(Path.Combine(d, "environ"))
            if environment.Split('\000') |> Array.contains $"{ParentWatch.Variable}={daemon}" then Some(Path.GetFileName d) else None
        with _ -> None)

/// Starts `tinygrow daemon args` as a process, waits for the job's second checkpoint (mid-training,
/// past a growth step), kills the daemon with SIGKILL, calls `afterKill`, and checks that its run
/// stopped itself.
let private killMidJob (f: Fixture) (id: string) (args: string list) (afterKill: unit -> unit) =
    let errors = Text.StringBuilder()
    let runs = f.File "runs"
    use p = CheckpointTests.start f.Path ("daemon" :: "--Daemon:PollSeconds=0.1" :: $"--Output:Directory={runs}" :: args) errors
    let partial = Path.Combine(f.File "runs", id + ".partial")
    Expect.isTrue (CheckpointTests.waitFor p (Path.Combine(partial, "checkpoint.previous.bin"))) $"the job's checkpoints appear (stderr: {errors})"
    Expect.isNonEmpty (runsOf p.Id) "the daemon's run is running"
    p.Kill() // SIGKILL, the daemon only: its run is orphaned
    p.WaitForExit()
    afterKill ()
    let clock = Stopwatch.StartNew()
    while runsOf p.Id |> Array.isEmpty |> not && clock.Elapsed.TotalSeconds < 10.0 do Thread.Sleep 50
    Expect.isEmpty (runsOf p.Id) "the orphaned run stopped itself"
    Expect.isFalse (File.ReadAllText(Path.Combine(partial, "metrics.jsonl")).Contains "\"final\"") "killed before the run finished"

/// Runs one in-process daemon over `queue` until the job is done; checks it resumed in place and
/// ended as the uninterrupted run.
let private resumeAndCheck (f: Fixture) (queue: IJobQueue) (id: string) (log: unit -> string) =
    let settings = settingsFrom [ "Daemon:PollSeconds", "0.1"; "Output:Directory", f.File "runs" ]
    use d = new DaemonService(queue, JobRunner(settings, NullLogger<JobRunner>.Instance, [ "dotnet"; app ]), settings, NullLogger<DaemonService>.Instance)
    let job = DaemonTests.runUntilDone queue [ d ] |> Seq.exactlyOne
    Expect.equal job.State JobState.Done $"done ({job.Reason})"
    Expect.equal (List.ofSeq d.Ran) [ id ] "run by the second daemon"
    Expect.equal job.RunFolder (Path.Combine(f.File "runs", id)) "in the first attempt's run folder, not a new one"
    Expect.stringContains (log ()) "Resuming from" "resumed from a checkpoint"
    let lines = CheckpointTests.metricsOf (string job.RunFolder)
    Expect.equal lines.Length f.Reference.Length "as many metrics lines as the uninterrupted run (no epoch lost or counted twice)"
    Array.iteri2 (fun i (got: string) expected -> Expect.equal got expected $"metrics line {i + 1}") lines f.Reference

let tests =
    let fixture = lazy (new Fixture())
    testSequenced <| testList "daemon resume" [
        test "folder queue: a daemon SIGKILLed mid-job and restarted resumes the job from its checkpoint; metrics as uninterrupted" {
            let f = fixture.Value
            f.Reference |> ignore
            let queueFolder = f.File "queue"
            let id = (FolderJobQueue queueFolder).Submit("killed", f.Experiment).Id
            killMidJob f id [ $"--Daemon:QueueFolder={queueFolder}" ] ignore
            resumeAndCheck f (FolderJobQueue queueFolder) id (fun () -> File.ReadAllText(Path.Combine(queueFolder, "done", id + ".log")))
        }

        test "folder queue: a job whose status file was damaged while its daemon was down resumes its earlier run folder, found by the job's id" {
            let f = fixture.Value
            f.Reference |> ignore
            let queueFolder = f.File "queue-damaged"
            let id = (FolderJobQueue queueFolder).Submit("damaged", f.Experiment).Id
            killMidJob f id [ $"--Daemon:QueueFolder={queueFolder}" ] (fun () ->
                File.WriteAllText(Path.Combine(queueFolder, "running", id + ".status"), "{\"Owner\": \"half a wr"))
            resumeAndCheck f (FolderJobQueue queueFolder) id (fun () -> File.ReadAllText(Path.Combine(queueFolder, "done", id + ".log")))
        }

        test "postgres queue: a daemon SIGKILLed mid-job: another daemon takes the job after the lease and resumes it; metrics as uninterrupted" {
            let f = fixture.Value
            f.Reference |> ignore
            use schema = new PostgresQueueTests.Schema()
            use submitter = PostgresQueueTests.queueOf schema (f.File "submit") 3.0
            let id = submitter.Submit("killed", f.Experiment).Id
            let work = f.File "work-a"
            // Right after the kill the lease (3 s, renewed every second) has at least 2 s left.
            killMidJob f id [ "--Daemon:Queue=postgres"; $"--Daemon:ConnectionString={schema.ConnectionString}"; "--Daemon:LeaseSeconds=3"; $"--Daemon:QueueFolder={work}" ] (fun () ->
                Expect.isEmpty (submitter.RequeueAbandoned()) "not taken before the lease expires"
                Expect.equal ((submitter.List() |> Seq.exactlyOne).State) JobState.Running "still running on the dead daemon")
            use other = PostgresQueueTests.queueOf schema (f.File "work-b") 3.0
            resumeAndCheck f other id (fun () -> File.ReadAllText(f.File(Path.Combine("work-b", id + ".log"))))
            Expect.equal (schema.Scalar "SELECT attempts FROM tinygrow_jobs" :?> int) 2 "two attempts: killed, resumed"
            (f :> IDisposable).Dispose()
        }
    ]
