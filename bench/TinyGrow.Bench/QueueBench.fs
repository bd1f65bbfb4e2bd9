/// The job queues themselves (issue 9): throughput of trivial jobs (submit, then claim + finish with
/// no training run: the queue's own operations) with one and three claimers, folder and PostgreSQL
/// side by side, alternated; and the CPU an idle `tinygrow daemon` uses over a minute (utime +
/// stime from /proc/<pid>/stat), both queues at once. The PostgreSQL server: scripts/ci-postgres.sh.
/// `make bench ARGS="queue [jobs] [connection-string]"`, `make bench ARGS="daemon-idle [seconds]"`.
module TinyGrow.Bench.QueueBench

open System
open System.Diagnostics
open System.IO
open System.Threading.Tasks
open Npgsql
open TinyGrow.Host.Daemon
open TinyGrow.Bench.Measure

let defaultServer = "Host=127.0.0.1;Port=55432;Database=tinygrow;Username=tinygrow;Password=tinygrow"

/// A fresh schema on the server (dropped by the caller); the connection string that works in it.
let private schema (server: string) =
    let name = "bench_" + Guid.NewGuid().ToString("N")[..7]
    use c = new NpgsqlConnection(server)
    c.Open()
    use command = new NpgsqlCommand($"CREATE SCHEMA {name}", c)
    command.ExecuteNonQuery() |> ignore
    name, $"{server};Search Path={name}"

let private drop (server: string) (name: string) =
    use c = new NpgsqlConnection(server)
    c.Open()
    use command = new NpgsqlCommand($"DROP SCHEMA {name} CASCADE", c)
    command.ExecuteNonQuery() |> ignore

/// Submits `jobs` trivial jobs, then `claimers` threads (each its own queue object) claim and finish
/// them; returns (submits per second, claim+finish per second).
let private throughput (make: int -> IJobQueue) (jobs: int) (claimers: int) =
    let submitter = make 0
    let clock = Stopwatch.StartNew()
    for i in 1 .. jobs do submitter.Submit($"job{i}", "{}") |> ignore
    let submitted = float jobs / clock.Elapsed.TotalSeconds
    let queues = [| for n in 1 .. claimers -> make n |]
    let count = ref 0
    clock.Restart()
    let claim (q: IJobQueue) () =
        let mutable go = true
        while go do
            match q.TryClaim() with
            | null -> go <- false
            | job ->
                use job = job
                job.Finish(JobOutcome(JobState.Done, null, null))
                Threading.Interlocked.Increment count |> ignore
    Task.WaitAll [| for q in queues -> Task.Run(claim q) |]
    let rate = float count.Value / clock.Elapsed.TotalSeconds
    if count.Value <> jobs then failwith $"claimed {count.Value} of {jobs} jobs"
    for q in Array.append [| submitter |] queues do
        match q with
        | :? IDisposable as d -> d.Dispose()
        | _ -> ()
    submitted, rate

let queue (jobs: int) (server: string) =
    let rows = Collections.Generic.Dictionary<string, ResizeArray<float * float>>()
    for round in 1 .. 3 do
        for claimers in [ 1; 3 ] do
            for kind in [ "folder"; "postgres" ] do
                let key = sprintf "%s, %d claimer%s" kind claimers (if claimers > 1 then "s" else "")
                let work = Directory.CreateTempSubdirectory("tinygrow-queue-bench-").FullName
                let result =
                    if kind = "folder" then
                        throughput (fun _ -> FolderJobQueue(Path.Combine(work, "queue")) :> IJobQueue) jobs claimers
                    else
                        let name, connection = schema server
                        try throughput (fun n -> new PostgresJobQueue(connection, Path.Combine(work, $"w{n}"), TimeSpan.FromSeconds 60.0) :> IJobQueue) jobs claimers
                        finally drop server name
                Directory.Delete(work, true)
                if not (rows.ContainsKey key) then rows[key] <- ResizeArray()
                rows[key].Add result
                printfn "round %d  %-24s submit %7.0f/s  claim+finish %7.0f/s" round key (fst result) (snd result)
    printfn "\n| queue, claimers | submit (jobs/s) | claim + finish (jobs/s) |"
    printfn "|---|---|---|"
    for kv in rows do
        printfn "| %s | %.0f | %.0f |" kv.Key (median [ for s, _ in kv.Value -> s ]) (median [ for _, r in kv.Value -> r ])
    printfn "(%d trivial jobs per measurement, median of 3 alternated rounds; load average %s)" jobs (File.ReadAllText("/proc/loadavg").Trim())
    0

/// utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/<pid>/stat).
let private cpuTicks (pid: int) =
    let stat = File.ReadAllText $"/proc/{pid}/stat"
    let fields = stat[stat.LastIndexOf(')') + 2 ..].Split(' ') // after "(comm)", field 3 onwards
    int64 fields[11] + int64 fields[12]

let daemonIdle (seconds: float) (server: string) =
    let app = Path.GetFullPath(Path.Combine("artifacts", "tinygrow", "tinygrow.dll"))
    let work = Directory.CreateTempSubdirectory("tinygrow-idle-bench-").FullName
    let name, connection = schema server
    let start (label: string) (args: string list) =
        let info = ProcessStartInfo("dotnet", RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = work)
        info.ArgumentList.Add app
        info.ArgumentList.Add "daemon"
        for a in args do info.ArgumentList.Add a
        let p = Process.Start info |> nonNull
        p.OutputDataReceived.Add ignore
        p.ErrorDataReceived.Add ignore
        p.BeginOutputReadLine()
        p.BeginErrorReadLine()
        label, p
    let daemons =
        [ for poll in [ 5.0; 1.0 ] do
            start $"folder, poll {poll} s" [ $"--Daemon:QueueFolder={work}/queue"; $"--Daemon:PollSeconds={poll}"; $"--Output:Directory={work}/runs" ]
            start $"postgres, poll {poll} s" [ "--Daemon:Queue=postgres"; $"--Daemon:ConnectionString={connection}"; $"--Daemon:QueueFolder={work}/w{poll}"; $"--Daemon:PollSeconds={poll}"; $"--Output:Directory={work}/runs" ] ]
    try
        Threading.Thread.Sleep 15_000 // start-up (JIT, plugin discovery, connection) is not idling
        let before = [ for _, p in daemons -> cpuTicks p.Id ]
        let clock = Stopwatch.StartNew()
        Threading.Thread.Sleep(TimeSpan.FromSeconds seconds)
        let after = [ for _, p in daemons -> cpuTicks p.Id ]
        let elapsed = clock.Elapsed.TotalSeconds
        printfn "| daemon (empty queue) | CPU seconds in %.0f s | CPU use |" elapsed
        printfn "|---|---|---|"
        for (label, _), b, a in List.zip3 daemons before after do
            let cpu = float (a - b) / 100.0 // USER_HZ: 100 ticks per second on Linux
            printfn "| %s | %.2f | %.3f %% |" label cpu (100.0 * cpu / elapsed)
        printfn "(load average %s)" (File.ReadAllText("/proc/loadavg").Trim())
    finally
        for _, p in daemons do
            p.Kill()
            p.WaitForExit()
        drop server name
        Directory.Delete(work, true)
    0
