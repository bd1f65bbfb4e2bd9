/// deploy/slurm/tinygrow-array.sbatch on a real single-node Slurm (scripts/ci-slurm.sh, run by
/// .ci/run): an array of three small experiments runs to completion, each in its own run folder, and
/// a task requeued mid-run (SIGTERM from Slurm) resumes from the checkpoint it wrote.
module TinyGrow.Host.Tests.SlurmTests

open System
open System.Diagnostics
open System.IO
open System.Text.Json.Nodes
open System.Text.RegularExpressions
open System.Threading
open Expecto
open TinyGrow.Host.Tests.TestUtil

let private repository = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", ".."))
let private app = Path.Combine(repository, "artifacts", "tinygrow", "tinygrow.dll")
let private script = Path.Combine(repository, "deploy", "slurm", "tinygrow-array.sbatch")

/// commandOutputs with standard output and error together.
let private command (file: string) (args: string list) (environment: (string * string) list) =
    let code, output, errors = commandOutputs file args environment
    code, output + errors

let private onPath (name: string) =
    (Environment.GetEnvironmentVariable "PATH" |> string).Split(':')
    |> Array.exists (fun dir -> dir <> "" && File.Exists(Path.Combine(dir, name)))

/// Null when a cluster answers; otherwise why not.
let private clusterProblem () =
    if not (onPath "sbatch" && onPath "sinfo") then Some "Slurm's commands (sbatch, sinfo) are not installed"
    else
        match command "sinfo" [ "-h"; "-o"; "%T" ] [] with
        | 0, states when Regex.IsMatch(states, "idle|mixed|allocated") -> None
        | code, text -> Some $"no Slurm node is up (sinfo exit {code}: {text.Trim()})"

/// In CI (TINYGROW_CI=1) a missing cluster is a failure: .ci/run should have started it. Elsewhere
/// the test is skipped with the command that starts one.
let private requireCluster () =
    match clusterProblem () with
    | None -> ()
    | Some why when Environment.GetEnvironmentVariable "TINYGROW_CI" = "1" ->
        failtest $"{why}, but TINYGROW_CI=1: .ci/run should have started a single-node cluster with scripts/ci-slurm.sh (see its output)"
    | Some why -> skiptest $"{why}: start a single-node cluster with `sudo scripts/ci-slurm.sh` to run this test"

/// An MLP growing from 1/1 on the generated MNIST files.
let private experiment (data: string) (epochs: int) (batchSize: int) =
    $$"""{ "Dataset": { "Name": "mnist", "Root": "{{data}}" },
          "Model": { "Layers": [ { "Kind": "dense", "Width": 1, "MaxWidth": 12 }, { "Kind": "dense", "Width": 1, "MaxWidth": 12 } ] },
          "Growth": { "StepsPerEpoch": 2, "UntilEpoch": 2, "NeuronsPerStep": 4, "StatisticsSamples": 256, "GammaSearchSamples": 256 },
          "Training": { "Epochs": {{epochs}}, "BatchSize": {{batchSize}}, "Seed": 3 },
          "Checkpoint": { "EverySeconds": 1 },
          "Device": "cpu" }"""

/// The squeue lines (task, state) of `job`; empty once every task has left the queue.
let private queue (job: string) =
    match command "squeue" [ "-h"; "-j"; job; "-o"; "%i %T" ] [] with
    | 0, text -> text.Split('\n', StringSplitOptions.RemoveEmptyEntries) |> Array.map (fun l -> l.Trim())
    | _, text when text.Contains "Invalid job id" -> [||] // already purged
    | code, text -> failtest $"squeue -j {job} failed (exit {code}): {text}"

/// The tasks' output files, for a failure's message.
let private logs (runs: string) =
    if not (Directory.Exists runs) then "(no run folder yet)"
    else String.Join("\n", Directory.GetFiles(runs, "slurm-*.log") |> Array.sort |> Array.map (fun f -> $"== {f}\n{File.ReadAllText f}"))

let private waitUntil (seconds: float) (what: string) (runs: string) (condition: unit -> bool) =
    let clock = Stopwatch.StartNew()
    while not (condition ()) do
        if clock.Elapsed.TotalSeconds > seconds then failtest $"waited {seconds} s for {what}. Task output:\n{logs runs}"
        Thread.Sleep 200

let private epochsOf (folder: string) =
    File.ReadAllLines(Path.Combine(folder, "metrics.jsonl"))
    |> Array.map JsonNode.Parse
    |> Array.choose (fun n ->
        match n with
        | :? JsonObject as o when string o["event"] = "epoch" -> Some(int (string o["epoch"]))
        | _ -> None)

let tests =
    testList "slurm" [
        test "TINYGROW_CI, which .ci/run exports, is not read as a configuration key; a misspelt key still is an error" {
            settingsFrom [ "CI", "1" ] |> ignore
            let e = thrown (fun () -> settingsFrom [ "CIX", "1" ] |> ignore)
            Expect.stringContains e.Message "Unknown configuration key 'CIX'" "other unknown keys are refused"
        }

        test "a job array runs three experiments, each in its own run folder; a requeued task resumes from its checkpoint" {
            requireCluster ()
            Expect.isTrue (File.Exists app) $"the application is built at {app}"
            use folder = new TempFolder()
            let mnist = Directory.CreateDirectory(folder.File "mnist").FullName
            EndToEndTests.writeMnist mnist "train" 4000 31
            EndToEndTests.writeMnist mnist "t10k" 200 32
            let experiments = Directory.CreateDirectory(folder.File "experiments").FullName
            // Task 1 is long enough (1,000 batches of 8; its first checkpoint comes after one second of
            // them) to be requeued mid-run with room to spare; tasks 0 and 2 take 20 batches.
            File.WriteAllText(Path.Combine(experiments, "a-short.json"), experiment folder.Path 1 200)
            File.WriteAllText(Path.Combine(experiments, "b-requeued.json"), experiment folder.Path 2 8)
            File.WriteAllText(Path.Combine(experiments, "c-short.json"), experiment folder.Path 1 200)
            let runs = folder.File "runs"
            let code, submitted =
                command "bash" [ script; experiments ] [ "TG_ARRAY_TINYGROW", $"dotnet {app}"; "TG_ARRAY_RUNS", runs; "TG_ARRAY_GRES", "" ]
            Expect.equal code 0 $"the script submits the array: {submitted}"
            let job = Regex.Match(submitted, @"Submitted batch job (\d+)").Groups[1].Value
            Expect.isNonEmpty job $"sbatch names the job: {submitted}"
            try
                let requeued = Path.Combine(runs, "b-requeued.partial")
                waitUntil 90.0 "task 1's first checkpoint" runs (fun () -> File.Exists(Path.Combine(requeued, "checkpoint.bin")))
                let code, text = command "scontrol" [ "requeue"; $"{job}_1" ] []
                Expect.equal code 0 $"scontrol requeue {job}_1: {text}"
                // A requeued job waits two minutes before it may start again: not in a test.
                waitUntil 30.0 "task 1 to be pending again" runs (fun () -> queue job |> Array.contains $"{job}_1 PENDING")
                let code, text = command "scontrol" [ "update"; $"jobid={job}_1"; "StartTime=now" ] []
                Expect.equal code 0 $"scontrol update StartTime=now: {text}"
                waitUntil 120.0 "every task to finish" runs (fun () -> queue job |> Array.isEmpty)
            finally
                command "scancel" [ job ] [] |> ignore

            for name in [ "a-short"; "b-requeued"; "c-short" ] do
                let run = Path.Combine(runs, name)
                Expect.isTrue (Directory.Exists run) $"{name} finished in its own folder {run}. Task output:\n{logs runs}"
                Expect.isFalse (Directory.Exists(run + ".partial")) $"{name} left no .partial folder"
                Expect.isTrue (File.Exists(Path.Combine(run, "model.json"))) $"{name} wrote its model"
            Expect.sequenceEqual (epochsOf (Path.Combine(runs, "a-short"))) [ 1 ] "a-short: its one epoch"
            Expect.sequenceEqual (epochsOf (Path.Combine(runs, "b-requeued"))) [ 1; 2 ] "the requeued run has each epoch once: none lost or counted twice"
            let log = File.ReadAllText(Path.Combine(runs, $"slurm-{job}_1.log"))
            Expect.stringContains log "(attempt 1)" "the first attempt is logged"
            // SIGTERM between batches writes a checkpoint; during a growth step (task 1 grows twice an
            // epoch) it abandons the step and the checkpoint from before it stands. Either way it says so.
            Expect.isTrue (contains log "Checkpoint (stopping)" || contains log "the step is abandoned")
                $"Slurm's SIGTERM made the run checkpoint or abandon its growth step, and say which:\n{log}"
            Expect.stringContains log "(attempt 2)" "Slurm ran the task again"
            Expect.stringContains log "Resuming from" "the second attempt resumed from the checkpoint"
            Expect.isFalse (contains log "starts over") "it did not start over"
        }
    ]
