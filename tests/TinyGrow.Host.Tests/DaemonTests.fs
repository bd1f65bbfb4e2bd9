/// The folder queue and the daemon: claims are exclusive (threads with their own queue objects, and
/// two daemons on one folder), a job whose daemon died is requeued only once its lock is free, and
/// a malformed job ends in failed/ with its reason while a good one completes.
module TinyGrow.Host.Tests.DaemonTests

open System
open System.IO
open System.Threading
open System.Threading.Tasks
open Expecto
open Microsoft.Extensions.Logging.Abstractions
open TinyGrow.Host
open TinyGrow.Host.Commands
open TinyGrow.Host.Daemon
open TinyGrow.Host.Tests.TestUtil

let private app = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "..", "artifacts", "tinygrow", "tinygrow.dll"))

/// A tiny fixed MLP on generated MNIST files: a child run of a second or two.
let goodExperiment (dataRoot: string) =
    $$"""{ "Dataset": { "Name": "mnist", "Root": "{{dataRoot.Replace("\\", "/")}}" },
          "Model": { "Layers": [ { "Kind": "dense", "Width": 2, "MaxWidth": 2 } ] },
          "Growth": { "Strategy": "none" },
          "Training": { "Epochs": 1, "BatchSize": 20 },
          "Device": "cpu" }"""

/// A daemon over `queue`, its runs writing to `output`, polling every 50 ms.
let private daemon (queue: string) (output: string) =
    let settings = settingsFrom [ "Daemon:QueueFolder", queue; "Daemon:PollSeconds", "0.05"; "Output:Directory", output ]
    let runner = JobRunner(settings, NullLogger<JobRunner>.Instance, [ "dotnet"; app ])
    new DaemonService(FolderJobQueue(queue), runner, settings, NullLogger<DaemonService>.Instance)

/// Runs the daemons until no job of `q` is queued or running (or 90 s pass), then stops them.
let runUntilDone (q: IJobQueue) (daemons: DaemonService list) =
    for d in daemons do d.StartAsync(CancellationToken.None).Wait()
    let deadline = DateTime.UtcNow.AddSeconds 90.0
    while DateTime.UtcNow < deadline && q.List() |> Seq.exists (fun j -> j.State = JobState.Queued || j.State = JobState.Running) do
        Thread.Sleep 100
    for d in daemons do d.StopAsync(CancellationToken.None).Wait()
    q.List()

let private runUntilEmpty (queue: string) (daemons: DaemonService list) = runUntilDone (FolderJobQueue queue) daemons

let dataFolder (folder: TempFolder) =
    let mnist = Directory.CreateDirectory(folder.File "mnist").FullName
    EndToEndTests.writeMnist mnist "train" 40 21
    EndToEndTests.writeMnist mnist "t10k" 10 22
    folder.Path

let tests =
    testList "daemon" [
        test "a Daemon:QueueFolder that is a file: daemon, submit and jobs exit 2 naming it; nothing is created" {
            use folder = new TempFolder()
            let file = folder.File "queue"
            File.WriteAllText(file, "not a folder")
            Expect.throwsC (fun () -> FolderJobQueue(file) |> ignore)
                (fun e -> Expect.isTrue (e :? QueueUnavailableException) "the queue is unavailable"; Expect.stringContains e.Message $"{file} is a file, not a folder" "names the file")
            File.WriteAllText(folder.File "job.json", "{}")
            for args in [ [ "jobs" ]; [ "submit"; folder.File "job.json" ]; [ "daemon" ] ] do
                let code, stderr = EndToEndTests.runApp folder.Path (args @ [ $"--Daemon:QueueFolder={file}" ])
                Expect.equal code ExitCodes.BadConfiguration $"{args.Head}: exit 2 ({stderr})"
                Expect.stringContains stderr "is a file, not a folder" $"{args.Head}: the message says why"
            Expect.equal (File.ReadAllText file) "not a folder" "the file is untouched"
            Expect.isFalse (Directory.Exists(folder.File "queued")) "nothing created beside it"
        }

        test "concurrent claimers on one folder each claim a different job; every job is claimed once" {
            use folder = new TempFolder()
            let root = folder.File "queue"
            let submitter = FolderJobQueue root
            let ids = [ for i in 1 .. 30 -> submitter.Submit($"job{i}", "{}").Id ]
            let claimed = Collections.Concurrent.ConcurrentBag<string>()
            let claimer () =
                let q = FolderJobQueue root // its own object: nothing shared but the folder
                let mutable go = true
                while go do
                    match q.TryClaim() with
                    | null -> go <- false
                    | job ->
                        claimed.Add job.Id
                        job.Finish(JobOutcome(JobState.Done, null, null))
            Task.WaitAll [| for _ in 1 .. 6 -> Task.Run claimer |]
            Expect.equal (claimed |> Seq.sort |> Seq.toList) (List.sort ids) "each job claimed exactly once"
            Expect.isTrue (submitter.List() |> Seq.forall (fun j -> j.State = JobState.Done)) "all done"
        }

        test "submit refuses what run would refuse (Epochs = 0, an unknown strategy): exit 2, the key named, nothing queued" {
            use folder = new TempFolder()
            let queue = folder.File "queue"
            for name, json, expected in [ "zero", """{ "Training": { "Epochs": 0 } }""", "Training:Epochs"
                                          "unknown", """{ "Growth": { "Strategy": "nope" } }""", "nope" ] do
                let file = folder.File (name + ".json")
                File.WriteAllText(file, json)
                let code, stderr = EndToEndTests.runApp folder.Path [ "submit"; file; $"--Daemon:QueueFolder={queue}" ]
                Expect.equal code ExitCodes.BadConfiguration $"{name}: exit 2 ({stderr})"
                Expect.stringContains stderr expected $"{name}: names it"
                Expect.stringContains stderr "nothing queued" $"{name}: says nothing was queued"
                let queued = Path.Combine(queue, "queued")
                Expect.isTrue (not (Directory.Exists queued) || Directory.GetFiles(queued).Length = 0) $"{name}: nothing in queued/"
        }

        test "a job whose running/<id>.json disappears while it runs ends failed with that reason; the queue goes on" {
            use folder = new TempFolder()
            let root = folder.File "queue"
            let q = FolderJobQueue root
            let id = q.Submit("gone", "{}").Id
            let next = q.Submit("next", "{}").Id
            use job = match q.TryClaim() with null -> failtest "not claimed" | j -> j
            File.Delete job.ExperimentPath
            job.Finish(JobOutcome(JobState.Done, null, null))
            let listed = q.List() |> Seq.find (fun j -> j.Id = id)
            Expect.equal listed.State JobState.Failed "failed, not done"
            Expect.stringContains (string listed.Reason) "disappeared while it ran" "the reason says why"
            Expect.isFalse (File.Exists(Path.Combine(root, "running", id + ".lock"))) "no stale lock"
            use second = match q.TryClaim() with null -> failtest "the next job is not claimed" | j -> j
            Expect.equal second.Id next "the queue goes on"
            second.Finish(JobOutcome(JobState.Done, null, null))
        }

        test "a running job is requeued only when its daemon's lock is free" {
            use folder = new TempFolder()
            let root = folder.File "queue"
            let a = FolderJobQueue root
            let id = a.Submit("exp", "{}").Id
            let job = match a.TryClaim() with null -> failtest "not claimed" | j -> j
            let other = FolderJobQueue root
            Expect.isEmpty (other.RequeueAbandoned()) "its daemon holds the lock: left running"
            Expect.equal (other.List() |> Seq.map (fun j -> j.State) |> Seq.toList) [ JobState.Running ] "running"
            job.Dispose() // the daemon dies: its OS lock goes with it
            Expect.equal (other.RequeueAbandoned() |> Seq.toList) [ id ] "requeued"
            let again = match other.TryClaim() with null -> failtest "not claimed again" | j -> j
            Expect.equal again.Id id "claimed again"
            again.Finish(JobOutcome(JobState.Done, null, null))
            Expect.equal (other.List() |> Seq.map (fun j -> j.State) |> Seq.toList) [ JobState.Done ] "done"
        }

        test "a job going back and forth between queued/ and running/ is in every listing (claims, stops, requeues of a dead daemon's job)" {
            use folder = new TempFolder()
            let root = folder.File "queue"
            let id = (FolderJobQueue root).Submit("exp", "{}").Id
            let stop = new CancellationTokenSource()
            // Another daemon's traffic: claim, then give the job back as a stopping daemon does or let
            // it be requeued as a dead daemon's, each a move from running/ to queued/.
            let traffic =
                Task.Run(fun () ->
                    let q = FolderJobQueue root
                    let mutable k = 0
                    while not stop.IsCancellationRequested do
                        match q.TryClaim() with
                        | null -> ()
                        | job ->
                            if k % 2 = 0 then job.Finish(JobOutcome(JobState.Queued, "stopping", null))
                            else
                                job.Dispose()
                                q.RequeueAbandoned() |> ignore
                            k <- k + 1)
            let lister = FolderJobQueue root
            let missing =
                try [ for _ in 1 .. 5000 do if lister.List() |> Seq.forall (fun j -> j.Id <> id) then yield () ] |> List.length
                finally
                    stop.Cancel()
                    traffic.Wait()
            Expect.equal missing 0 "listings that missed the job"
            Expect.equal (lister.List() |> Seq.map (fun j -> j.Id) |> Seq.toList) [ id ] "one job, listed once"
        }

        test "submit queues a copy whole; a file that is not JSON is refused; jobs lists states" {
            use folder = new TempFolder()
            let q = FolderJobQueue(folder.File "queue")
            File.WriteAllText(folder.File "good.json", "{ \"Training\": { \"Epochs\": 1 }, // comment\n }")
            File.WriteAllText(folder.File "bad.json", "{ \"Training\": ")
            use out = new StringWriter()
            use err = new StringWriter()
            Expect.equal (QueueCommands.Submit(q, folder.File "good.json", out, err)) ExitCodes.Ok "submitted"
            Expect.equal (QueueCommands.Submit(q, folder.File "bad.json", out, err)) ExitCodes.BadConfiguration "refused"
            Expect.stringContains (err.ToString()) "bad.json is not valid JSON" "names the file"
            // a misspelt key is refused at submit time, as run would refuse it, not later in the daemon
            File.WriteAllText(folder.File "typo.json", "{ \"Training\": { \"Epoch\": 1 } }")
            use typo = new StringWriter()
            Expect.equal (QueueCommands.Submit(q, folder.File "typo.json", out, typo)) ExitCodes.BadConfiguration "a misspelt key: refused"
            Expect.stringContains (typo.ToString()) "'Training:Epoch'" "names the key"
            Expect.stringContains (typo.ToString()) "nothing queued" "and says nothing was queued"
            let jobs = q.List()
            Expect.equal jobs.Count 1 "one job"
            Expect.stringContains jobs[0].Id "-good-" "named after its file"
            Expect.isEmpty (Directory.GetFiles(folder.File "queue/incoming")) "no temporary file left"
            use listing = new StringWriter()
            QueueCommands.Jobs(q, listing) |> ignore
            Expect.stringContains (listing.ToString()) $"queued   {jobs[0].Id}" "listed"
        }

        test "a malformed job ends in failed/ with its reason, a good one in done/ with its run folder; the daemon goes on" {
            use folder = new TempFolder()
            let data = dataFolder folder
            let queue = folder.File "queue"
            let q = FolderJobQueue queue
            let bad = q.Submit("malformed", "{ \"Training\": { \"Epochs\": 1, ").Id
            let good = q.Submit("good", goodExperiment data).Id
            use d = daemon queue (folder.File "runs")
            let jobs = runUntilEmpty queue [ d ]
            let state id = jobs |> Seq.find (fun j -> j.Id = id)
            Expect.equal (state bad).State JobState.Failed "malformed: failed"
            let reason = string (state bad).Reason
            Expect.stringContains reason "exit 2" "the reason gives the exit code"
            Expect.stringContains reason $"{bad}.json" "and the run's error, naming the file"
            Expect.stringContains reason (Path.Combine(queue, "failed", bad + ".json")) "where the file now is (failed/), not where it ran"
            Expect.equal (state good).State JobState.Done "good: done"
            let run = string (state good).RunFolder
            Expect.equal run (Path.Combine(folder.File "runs", good)) "the run id is the job id"
            for file in [ "metrics.jsonl"; "report.md" ] do
                Expect.isTrue (File.Exists(Path.Combine(run, file))) $"{file} in the run folder"
            Expect.isTrue (File.Exists(Path.Combine(queue, "failed", bad + ".log"))) "the failed run's output is kept with it"
            // Ids are taken oldest first; two submitted in the same millisecond tie and go by name, so
            // the order of these two is not part of the claim: each ran once, and the daemon went on.
            Expect.equal (d.Ran |> Seq.sort |> Seq.toList) (List.sort [ bad; good ]) "both run, once each"
        }

        test "two daemons on one folder run each job exactly once" {
            use folder = new TempFolder()
            let data = dataFolder folder
            let queue = folder.File "queue"
            let q = FolderJobQueue queue
            let ids = [ for i in 1 .. 4 -> q.Submit($"job{i}", goodExperiment data).Id ]
            use d1 = daemon queue (folder.File "runs")
            use d2 = daemon queue (folder.File "runs")
            let jobs = runUntilEmpty queue [ d1; d2 ]
            let listing = jobs |> Seq.map string |> String.concat "; "
            Expect.isTrue (jobs |> Seq.forall (fun j -> j.State = JobState.Done)) $"all done: {listing}"
            Expect.equal (Seq.append d1.Ran d2.Ran |> Seq.sort |> Seq.toList) (List.sort ids) "each job run by exactly one daemon, once"
            Expect.equal (Directory.GetDirectories(folder.File "runs") |> Array.map (fun d -> string (Path.GetFileName d)) |> Array.sort) (ids |> List.sort |> List.toArray) "one run folder per job"
        }
    ]
