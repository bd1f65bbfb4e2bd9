using Microsoft.Extensions.Logging;
using Npgsql;

namespace TinyGrow.Host.Daemon;

/// <summary>
/// The queue as one PostgreSQL table, <c>tinygrow_jobs</c> (created if absent), shared by daemons on
/// many hosts. A claim is one statement that takes the oldest queued row with
/// <c>FOR UPDATE SKIP LOCKED</c> (two daemons never get the same row, and neither waits for the
/// other) and gives it a lease; the claiming daemon renews the lease every third of its length while
/// the job runs. A daemon that dies stops renewing: once the lease has expired, any daemon puts the
/// job back in the queue (<see cref="RequeueAbandoned"/>) with the run folder of the attempt, which
/// the next claimer resumes from its checkpoint when it can see that folder.
/// </summary>
/// <remarks>Leases are computed with the server's clock (<c>now()</c>) only, so clock skew between
/// daemons does not matter. The experiment is kept as text, not <c>jsonb</c>: experiment files may
/// hold comments, and the daemon runs the file as submitted. A claimed job's experiment file and the
/// run's output log are written to <c>workFolder</c> on the claiming host.</remarks>
public sealed class PostgresJobQueue : IJobQueue, IDisposable
{
    /// <summary>The table's name.</summary>
    public const string Table = "tinygrow_jobs";

    readonly NpgsqlDataSource _source;
    readonly string _work, _where;
    readonly TimeSpan _lease;
    readonly TimeProvider _clock;
    readonly ILogger? _log;

    /// <summary>Connects (creating the table if absent) and uses <paramref name="workFolder"/> for the
    /// files of the jobs this process claims.</summary>
    /// <exception cref="QueueUnavailableException">The server cannot be reached or refuses the connection.</exception>
    public PostgresJobQueue(string connectionString, string workFolder, TimeSpan lease, ILogger? log = null, TimeProvider? clock = null)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        // Names the server for messages, without the password.
        _where = $"PostgreSQL at {builder.Host}:{builder.Port}, database {builder.Database ?? "(the user's)"}, user {builder.Username ?? "(the login's)"}";
        _source = NpgsqlDataSource.Create(builder);
        _work = Path.GetFullPath(workFolder);
        Directory.CreateDirectory(_work);
        _lease = lease;
        _log = log;
        _clock = clock ?? TimeProvider.System;
        Owner = $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid().ToString("N")[..6]}";
        Execute(CreateTable, _ => { });
    }

    /// <summary>This daemon's name in the table's <c>owner</c> column: host, process and a random
    /// part (two queues in one process are two daemons).</summary>
    public string Owner { get; }

    /// <inheritdoc/>
    public string Description => $"{_where}, table {Table}, lease {_lease.TotalSeconds:0.###} s (daemon {Owner})";

    // Serialised by an advisory lock: CREATE TABLE IF NOT EXISTS run at once by two daemons can
    // still collide on the type's name.
    const string CreateTable = $"""
        SELECT pg_advisory_xact_lock(hashtext('{Table}'));
        CREATE TABLE IF NOT EXISTS {Table} (
            seq bigint GENERATED ALWAYS AS IDENTITY,
            id text PRIMARY KEY,
            experiment text NOT NULL,
            state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'failed')),
            reason text,
            owner text,
            lease_expires timestamptz,
            attempts integer NOT NULL DEFAULT 0,
            submitted timestamptz NOT NULL DEFAULT now(),
            started timestamptz,
            finished timestamptz,
            run_folder text);
        CREATE INDEX IF NOT EXISTS {Table}_state ON {Table} (state, seq);
        """;

    /// <inheritdoc/>
    public JobInfo Submit(string name, string experimentJson)
    {
        var id = FolderJobQueue.NewId(name, _clock.GetUtcNow());
        Execute($"INSERT INTO {Table} (id, experiment) VALUES (@id, @experiment)", c =>
        {
            c.Parameters.AddWithValue("id", id);
            c.Parameters.AddWithValue("experiment", experimentJson);
        });
        return new(id, JobState.Queued);
    }

    /// <inheritdoc/>
    public IClaimedJob? TryClaim()
    {
        string? id = null, experiment = null, previous = null;
        Read($"""
            UPDATE {Table} j
               SET state = 'running', owner = @owner, attempts = j.attempts + 1, started = now(),
                   lease_expires = now() + make_interval(secs => @lease)
              FROM (SELECT id FROM {Table} WHERE state = 'queued' ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED) c
             WHERE j.id = c.id
            RETURNING j.id, j.experiment, j.run_folder
            """,
            c =>
            {
                c.Parameters.AddWithValue("owner", Owner);
                c.Parameters.AddWithValue("lease", _lease.TotalSeconds);
            },
            r => (id, experiment, previous) = (r.GetString(0), r.GetString(1), r.IsDBNull(2) ? null : r.GetString(2)));
        if (id is null) return null;
        var path = Path.Combine(_work, id + ".json");
        File.WriteAllText(path, experiment);
        return new Claim(this, id, path, previous);
    }

    /// <inheritdoc/>
    public IReadOnlyList<string> RequeueAbandoned()
    {
        var ids = new List<string>();
        // The WHERE is checked again under each row's lock: of two daemons doing this at once, one requeues.
        Read($"""
            UPDATE {Table}
               SET state = 'queued', reason = 'requeued: the lease of ' || owner || ' expired at ' || lease_expires, lease_expires = NULL
             WHERE state = 'running' AND lease_expires < now()
            RETURNING id
            """, _ => { }, r => ids.Add(r.GetString(0)));
        return ids;
    }

    /// <inheritdoc/>
    public IReadOnlyList<JobInfo> List()
    {
        var jobs = new List<JobInfo>();
        Read($"""
            SELECT id, state, reason, run_folder, owner FROM {Table}
             ORDER BY array_position(ARRAY['queued', 'running', 'done', 'failed'], state), seq
            """, _ => { }, r =>
            {
                var state = Enum.Parse<JobState>(r.GetString(1), ignoreCase: true);
                jobs.Add(new(r.GetString(0), state, state == JobState.Failed && !r.IsDBNull(2) ? r.GetString(2) : null,
                    r.IsDBNull(3) ? null : r.GetString(3), r.IsDBNull(4) ? null : r.GetString(4)));
            });
        return jobs;
    }

    /// <inheritdoc/>
    public void Dispose() => _source.Dispose();

    int Execute(string sql, Action<NpgsqlCommand> parameters) => Guarded(() =>
    {
        using var command = _source.CreateCommand(sql);
        parameters(command);
        return command.ExecuteNonQuery();
    });

    void Read(string sql, Action<NpgsqlCommand> parameters, Action<NpgsqlDataReader> row) => Guarded(() =>
    {
        using var command = _source.CreateCommand(sql);
        parameters(command);
        using var reader = command.ExecuteReader();
        while (reader.Read()) row(reader);
        return 0;
    });

    // Connection failures become one message naming the server (never the password) and the fix.
    T Guarded<T>(Func<T> action)
    {
        try
        {
            return action();
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.InvalidPassword or PostgresErrorCodes.InvalidAuthorizationSpecification)
        {
            throw new QueueUnavailableException($"{_where}: the server refused the credentials ({e.MessageText}). Check Username and the password (TINYGROW_Daemon__ConnectionString, PGPASSWORD or ~/.pgpass).", e);
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.InvalidCatalogName)
        {
            throw new QueueUnavailableException($"{_where}: {e.MessageText}. Create the database or fix Database in Daemon:ConnectionString.", e);
        }
        catch (NpgsqlException e) when (e is not PostgresException)
        {
            throw new QueueUnavailableException($"{_where}: cannot reach the server ({e.InnerException?.Message ?? e.Message}). Check that it runs and Host/Port in Daemon:ConnectionString.", e);
        }
    }

    sealed class Claim : IClaimedJob
    {
        readonly PostgresJobQueue _queue;
        readonly CancellationTokenSource _lost = new(), _stop = new();
        readonly Task _renewing;
        bool _finished;

        public Claim(PostgresJobQueue queue, string id, string experimentPath, string? previousRunFolder)
        {
            _queue = queue;
            Id = id;
            ExperimentPath = experimentPath;
            PreviousRunFolder = previousRunFolder;
            _renewing = Task.Run(RenewAsync);
        }

        public string Id { get; }
        public string ExperimentPath { get; }
        public string LogPath => Path.Combine(_queue._work, Id + ".log");
        public string? PreviousRunFolder { get; }
        public CancellationToken Lost => _lost.Token;

        // Ours while state = running and owner = us: a lease that expired and was taken over is lost.
        int Update(string set, Action<NpgsqlCommand> parameters) =>
            _queue.Execute($"UPDATE {Table} SET {set} WHERE id = @id AND owner = @owner AND state = 'running'", c =>
            {
                c.Parameters.AddWithValue("id", Id);
                c.Parameters.AddWithValue("owner", _queue.Owner);
                parameters(c);
            });

        async Task RenewAsync()
        {
            using var timer = new PeriodicTimer(_queue._lease / 3);
            try
            {
                while (await timer.WaitForNextTickAsync(_stop.Token))
                {
                    try
                    {
                        var renewed = Update("lease_expires = now() + make_interval(secs => @lease)",
                            c => c.Parameters.AddWithValue("lease", _queue._lease.TotalSeconds));
                        if (renewed == 1) continue;
                        _queue._log?.LogError("Job {Job}: lease lost (another daemon took the job over after it expired); stopping its run", Id);
                        _lost.Cancel();
                        return;
                    }
                    catch (QueueUnavailableException e)
                    {
                        // The lease may still run out: then another daemon takes the job and this
                        // daemon learns it at the next renewal that reaches the server.
                        _queue._log?.LogWarning("Job {Job}: lease not renewed: {Error}", Id, e.Message);
                    }
                }
            }
            catch (OperationCanceledException) { }
        }

        public void Started(string runFolder) => Update("run_folder = @folder", c => c.Parameters.AddWithValue("folder", runFolder));

        public void Finish(JobOutcome outcome)
        {
            if (_finished) throw new InvalidOperationException($"job {Id} already finished");
            if (outcome.State is not (JobState.Done or JobState.Failed or JobState.Queued))
                throw new ArgumentException($"a job cannot finish as {outcome.State}", nameof(outcome));
            StopRenewing();
            _finished = true;
            var recorded = Update("""
                state = @state, reason = @reason, run_folder = coalesce(@folder, run_folder), lease_expires = NULL,
                finished = CASE WHEN @state = 'queued' THEN NULL ELSE now() END
                """, c =>
            {
                c.Parameters.AddWithValue("state", outcome.State.ToString().ToLowerInvariant());
                c.Parameters.AddWithValue("reason", (object?)outcome.Reason ?? DBNull.Value);
                c.Parameters.AddWithValue("folder", (object?)outcome.RunFolder ?? DBNull.Value);
            });
            if (recorded == 0)
                _queue._log?.LogWarning("Job {Job}: its outcome ({State}) was not recorded: the lease had been lost to another daemon", Id, outcome.State);
            File.Delete(ExperimentPath);
        }

        void StopRenewing()
        {
            _stop.Cancel();
            try { _renewing.Wait(); } catch (AggregateException) { }
        }

        // Unfinished: the row stays running until its lease expires, as if the daemon had died.
        public void Dispose()
        {
            StopRenewing();
            _stop.Dispose();
        }
    }
}
