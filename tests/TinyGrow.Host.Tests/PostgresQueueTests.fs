/// The PostgreSQL queue against a real server on loopback (scripts/ci-postgres.sh starts one; no
/// mock): claims are exclusive under concurrency, leases are renewed while a job runs and taken back
/// once expired, three daemons run ten jobs once each, and an unreachable server or refused
/// credentials are named (host and port, never the password). Each test works in its own schema.
module TinyGrow.Host.Tests.PostgresQueueTests

open System
open System.IO
open System.Threading
open System.Threading.Tasks
open Expecto
open Microsoft.Extensions.Logging.Abstractions
open Npgsql
open TinyGrow.Host.Daemon
open TinyGrow.Host.Tests.TestUtil

/// The server scripts/ci-postgres.sh starts (fixed port, known database and user).
let server = "Host=127.0.0.1;Port=55432;Database=tinygrow;Username=tinygrow;Password=tinygrow;Timeout=5"

let private app = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "..", "artifacts", "tinygrow", "tinygrow.dll"))

/// Fails (under CI, which should have started the server) or skips (elsewhere, saying how to start
/// it) when the server does not answer.
let requireServer () =
    try
        use c = new NpgsqlConnection(server)
        c.Open()
    with e ->
        let message = $"no PostgreSQL at 127.0.0.1:55432 ({e.Message})"
        if Environment.GetEnvironmentVariable "TINYGROW_CI" = "1" then
            failtest $"{message}: .ci/run should have started it with scripts/ci-postgres.sh; see its output."
        else
            skiptest $"{message}. Start one with: sudo scripts/ci-postgres.sh"

/// A schema of its own on the test server, dropped on dispose; `ConnectionString` works in it.
type Schema() =
    do requireServer ()
    let name = "t_" + Guid.NewGuid().ToString("N")[..11]
    let exec (sql: string) =
        use c = new NpgsqlConnection(server)
        c.Open()
        use command = new NpgsqlCommand(sql, c)
        command.ExecuteNonQuery() |> ignore
    do exec $"CREATE SCHEMA {name}"
    member _.ConnectionString = $"{server};Search Path={name}"
    /// One value of a query in this schema.
    member this.Scalar(sql: string) : obj =
        use c = new NpgsqlConnection(this.ConnectionString)
        c.Open()
        use command = new NpgsqlCommand(sql, c)
        match command.ExecuteScalar() with
        | null -> failtest $"no value: {sql}"
        | value -> value
    interface IDisposable with
        member _.Dispose() = try exec $"DROP SCHEMA {name} CASCADE" with _ -> ()

let queueOf (schema: Schema) (work: string) (leaseSeconds: float) =
    new PostgresJobQueue(schema.ConnectionString, work, TimeSpan.FromSeconds leaseSeconds, NullLogger.Instance)

let tests =
    testList "postgres queue" [
        test "configuration: Daemon:Queue is folder or postgres; postgres needs a connection string that parses; the value is never shown" {
            let errors pairs =
                TinyGrow.Host.Configuration.SettingsValidator.Validate(settingsFrom (("Model:Layers:0:Width", "1") :: pairs)) |> String.concat "\n"
            Expect.equal (errors [ "Daemon:Queue", "postgres"; "Daemon:ConnectionString", server ]) "" "a good one passes"
            Expect.stringContains (errors [ "Daemon:Queue", "postgress" ]) "Daemon:Queue = 'postgress': use folder or postgres" "a misspelt kind is named"
            Expect.stringContains (errors [ "Daemon:Queue", "postgres" ]) "Daemon:ConnectionString = (not shown: it may hold a password): is required with Daemon:Queue=postgres" "a missing one is named"
            let bad = errors [ "Daemon:Queue", "postgres"; "Daemon:ConnectionString", "Hots=db;Password=sekrit-3" ]
            Expect.stringContains bad "Daemon:ConnectionString" "a malformed one is named"
            Expect.stringContains bad "not an Npgsql connection string" "and why"
            Expect.isFalse (bad.Contains "sekrit") "without the password"
            Expect.stringContains (errors [ "Daemon:Queue", "postgres"; "Daemon:ConnectionString", server; "Daemon:LeaseSeconds", "0.5" ]) "Daemon:LeaseSeconds = 0.5" "a lease out of range is named"
            Expect.equal (errors [ "Daemon:ConnectionString", "Hots=db" ]) "" "the folder queue ignores it"
        }

        test "an unreachable server and refused credentials are named by host and port, never the password" {
            use folder = new TempFolder()
            let messageOf (connection: string) =
                try
                    (new PostgresJobQueue(connection, folder.Path, TimeSpan.FromSeconds 5.0)).Dispose()
                    failtest "connected"
                with :? QueueUnavailableException as e -> e.Message
            let message = messageOf "Host=127.0.0.1;Port=1;Database=q;Username=u;Password=sekrit-1;Timeout=3"
            Expect.stringContains message "127.0.0.1:1" "names host and port"
            Expect.stringContains message "cannot reach the server" "says what is wrong"
            Expect.isFalse (message.Contains "sekrit") "no password"
            requireServer ()
            let message = messageOf (server.Replace("Password=tinygrow", "Password=sekrit-2"))
            Expect.stringContains message "127.0.0.1:55432" "names host and port"
            Expect.stringContains message "refused the credentials" "says what is wrong"
            Expect.isFalse (message.Contains "sekrit") "no password"
        }

        test "concurrent claimers, each with its own connection, claim every job exactly once" {
            use schema = new Schema()
            use folder = new TempFolder()
            use submitter = queueOf schema (folder.File "w0") 30.0
            let ids = [ for i in 1 .. 30 -> submitter.Submit($"job{i}", "{ /* a comment is kept */ }").Id ]
            let claimed = Collections.Concurrent.ConcurrentBag<string>()
            let claimer (n: int) () =
                use q = queueOf schema (folder.File $"w{n}") 30.0
                let mutable go = true
                while go do
                    match q.TryClaim() with
                    | null -> go <- false
                    | job ->
                        use job = job
                        Expect.equal (File.ReadAllText job.ExperimentPath) "{ /* a comment is kept */ }" "the experiment as submitted"
                        claimed.Add job.Id
                        job.Finish(JobOutcome(JobState.Done, null, null))
            Task.WaitAll [| for n in 1 .. 6 -> Task.Run(claimer n) |]
            Expect.equal (claimed |> Seq.sort |> Seq.toList) (List.sort ids) "each job claimed exactly once"
            Expect.isTrue (submitter.List() |> Seq.forall (fun j -> j.State = JobState.Done)) "all done"
            Expect.equal (schema.Scalar "SELECT max(attempts) FROM tinygrow_jobs" :?> int) 1 "one attempt each"
        }

        test "a lease is renewed while its daemon lives and taken back after it expires, with the run folder of the attempt" {
            use schema = new Schema()
            use folder = new TempFolder()
            use a = queueOf schema (folder.File "a") 2.0
            use b = queueOf schema (folder.File "b") 2.0
            let id = a.Submit("exp", "{}").Id
            let job = match a.TryClaim() with null -> failtest "not claimed" | j -> j
            job.Started "/runs/exp.partial"
            Thread.Sleep 5000 // 2.5 leases: renewed every third of one
            Expect.isEmpty (b.RequeueAbandoned()) "a live daemon keeps its job"
            Expect.isNull (b.TryClaim()) "nothing else to claim"
            Expect.equal ((b.List() |> Seq.exactlyOne).Owner) a.Owner "running on a"
            job.Dispose() // the daemon dies: its lease is no longer renewed
            Expect.isEmpty (b.RequeueAbandoned()) "not before the lease expires"
            Thread.Sleep 2500
            Expect.equal (b.RequeueAbandoned() |> Seq.toList) [ id ] "requeued once the lease expired"
            Expect.isEmpty (a.RequeueAbandoned()) "by one daemon only"
            let again = match b.TryClaim() with null -> failtest "not claimed again" | j -> j
            Expect.equal again.PreviousRunFolder (Some "/runs/exp.partial" |> Option.toObj) "the attempt's run folder is handed on"
            again.Finish(JobOutcome(JobState.Done, null, "/runs/exp"))
            let listed = b.List() |> Seq.exactlyOne
            Expect.equal (listed.State, listed.RunFolder) (JobState.Done, "/runs/exp") "done, with its run folder"
            Expect.equal (schema.Scalar "SELECT attempts FROM tinygrow_jobs" :?> int) 2 "two attempts"
        }

        test "a claim taken over by another daemon is lost: its holder is told at the next renewal and its outcome is not recorded" {
            use schema = new Schema()
            use folder = new TempFolder()
            use a = queueOf schema (folder.File "a") 1.0
            a.Submit("exp", "{}") |> ignore
            use job = match a.TryClaim() with null -> failtest "not claimed" | j -> j
            Expect.isFalse job.Lost.IsCancellationRequested "held"
            // What another daemon does after a lease expired during a network partition.
            schema.Scalar "UPDATE tinygrow_jobs SET owner = 'elsewhere:1:abcdef' RETURNING 1" |> ignore
            Expect.isTrue (job.Lost.WaitHandle.WaitOne 5000) "lost at the next renewal (every third of the lease)"
            job.Finish(JobOutcome(JobState.Failed, "too late", null))
            Expect.equal (schema.Scalar "SELECT state || ' ' || owner FROM tinygrow_jobs" :?> string) "running elsewhere:1:abcdef" "the new holder's row is untouched"
        }

        test "three daemons, ten jobs: each job is run exactly once" {
            use schema = new Schema()
            use folder = new TempFolder()
            let data = DaemonTests.dataFolder folder
            use q = queueOf schema (folder.File "submit") 30.0
            let ids = [ for i in 1 .. 10 -> q.Submit($"job{i}", DaemonTests.goodExperiment data).Id ]
            let settings = settingsFrom [ "Daemon:PollSeconds", "0.05"; "Output:Directory", folder.File "runs" ]
            let queues = [ for n in 1 .. 3 -> queueOf schema (folder.File $"work{n}") 30.0 ]
            let daemons =
                [ for queue in queues ->
                    new DaemonService(queue, JobRunner(settings, NullLogger<JobRunner>.Instance, [ "dotnet"; app ]), settings, NullLogger<DaemonService>.Instance) ]
            let jobs = DaemonTests.runUntilDone q daemons
            let listing = jobs |> Seq.map string |> String.concat "; "
            Expect.isTrue (jobs |> Seq.forall (fun j -> j.State = JobState.Done)) $"all done: {listing}"
            let ran = daemons |> Seq.collect (fun d -> d.Ran) |> Seq.sort |> Seq.toList
            Expect.equal ran (List.sort ids) "each job run by exactly one daemon, once"
            Expect.equal (schema.Scalar "SELECT max(attempts) FROM tinygrow_jobs" :?> int) 1 "one attempt each"
            Expect.equal (Directory.GetDirectories(folder.File "runs") |> Array.map (fun d -> string (Path.GetFileName d)) |> Array.sort) (ids |> List.sort |> List.toArray) "one finished run folder per job"
            for d in daemons do d.Dispose()
            for queue in queues do queue.Dispose()
        }
    ]
