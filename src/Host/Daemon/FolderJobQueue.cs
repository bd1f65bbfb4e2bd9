using System.Text.Json;
using System.Text.RegularExpressions;

namespace TinyGrow.Host.Daemon;

/// <summary>
/// The queue as a folder on one host: <c>queued/ running/ done/ failed/</c>, a job being
/// <c>&lt;id&gt;.json</c> (its experiment file) with <c>&lt;id&gt;.log</c> (its run's output) and
/// <c>&lt;id&gt;.status</c> (owner, times, reason, run folder) beside it.
/// </summary>
/// <remarks>
/// Claiming is a rename from queued/ to running/ (atomic: one claimer wins) made while holding
/// <c>queue.lock</c>, together with an exclusive lock on <c>running/&lt;id&gt;.lock</c> that the daemon
/// holds until the job has left running/. Locks are the operating system's (.NET takes
/// <c>flock(LOCK_EX)</c> for <see cref="FileShare.None"/> on Unix), so they vanish with the process
/// that held them: a job in running/ whose lock can be taken belongs to a dead daemon and is
/// requeued (<see cref="RequeueAbandoned"/>, also under <c>queue.lock</c>, so it cannot race a claim).
/// A job finishes by moving its files out of running/ before its lock is released.
/// </remarks>
public sealed partial class FolderJobQueue : IJobQueue
{
    const string Queued = "queued", Running = "running", Done = "done", Failed = "failed", Incoming = "incoming";
    static readonly string[] Sidecars = [".log", ".status"];
    static readonly TimeSpan LockWait = TimeSpan.FromSeconds(30);

    readonly TimeProvider _clock;

    /// <summary>Uses (and creates) the queue folder <paramref name="root"/>.</summary>
    public FolderJobQueue(string root, TimeProvider? clock = null)
    {
        Root = Path.GetFullPath(root);
        _clock = clock ?? TimeProvider.System;
        foreach (var folder in new[] { Queued, Running, Done, Failed, Incoming })
        {
            var path = Path.Combine(Root, folder);
            var file = File.Exists(Root) ? Root : File.Exists(path) ? path : null;
            if (file is not null)
                throw new QueueUnavailableException($"Daemon:QueueFolder = {Root}: {file} is a file, not a folder. Point Daemon:QueueFolder at a folder (it is created when missing), or move the file away.");
            try { Directory.CreateDirectory(path); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new QueueUnavailableException($"Daemon:QueueFolder = {Root}: {path} cannot be created ({e.Message}). Point Daemon:QueueFolder at a folder this user may write.", e);
            }
        }
    }

    /// <summary>The queue folder.</summary>
    public string Root { get; }

    // Held by claims, requeues, moves back into queued/ and listings (the class remarks say why).
    string QueueLockPath => Path.Combine(Root, "queue.lock");

    /// <summary>Who holds a claim: written into the job's status.</summary>
    public static string Owner => $"{Environment.MachineName}:{Environment.ProcessId}";

    /// <inheritdoc/>
    public string Description => $"folder {Root} (daemon {Owner})";

    /// <summary>A new job id: its UTC submission time (so ids sort oldest first), the safe part of
    /// <paramref name="name"/>, and a random suffix.</summary>
    public static string NewId(string name, DateTimeOffset now)
    {
        var stem = Unsafe().Replace(name, "_").Trim('_', '.', '-');
        if (stem.Length > 40) stem = stem[..40];
        return $"{now:yyyyMMdd-HHmmss-fff}-{(stem.Length > 0 ? stem + "-" : "")}{Guid.NewGuid().ToString("N")[..6]}";
    }

    string In(string state, string file) => Path.Combine(Root, state, file);

    /// <inheritdoc/>
    public JobInfo Submit(string name, string experimentJson)
    {
        var id = NewId(name, _clock.GetUtcNow());
        // Written beside the queue and renamed in: a claimer never sees half a file.
        var temporary = In(Incoming, id + ".json");
        using (var file = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write))
        using (var writer = new StreamWriter(file))
        {
            writer.Write(experimentJson);
            writer.Flush();
            file.Flush(flushToDisk: true);
        }
        File.Move(temporary, In(Queued, id + ".json"));
        return new(id, JobState.Queued);
    }

    /// <inheritdoc/>
    public IClaimedJob? TryClaim()
    {
        using var queueLock = Lock(QueueLockPath, wait: true)!;
        foreach (var path in Jobs(Queued))
        {
            var id = Path.GetFileNameWithoutExtension(path);
            var lockPath = In(Running, id + ".lock");
            var jobLock = Lock(lockPath, wait: false);
            if (jobLock is null) continue; // a job of that id is running (a name submitted twice by hand)
            try
            {
                File.Move(path, In(Running, id + ".json"));
            }
            catch (IOException)
            {
                // Gone (claimed through another way in), or a job of that id sits in running/.
                jobLock.Dispose();
                continue;
            }
            MoveSidecars(id, Queued, Running);
            var status = ReadStatus(Running, id);
            var previous = status.RunFolder; // of an attempt whose daemon died or stopped
            status.Owner = Owner;
            status.Started = _clock.GetUtcNow();
            status.Attempts++;
            WriteStatus(Running, id, status);
            return new Claim(this, id, jobLock, previous);
        }
        return null;
    }

    /// <inheritdoc/>
    public IReadOnlyList<string> RequeueAbandoned()
    {
        var requeued = new List<string>();
        using var queueLock = Lock(QueueLockPath, wait: true)!;
        foreach (var path in Jobs(Running))
        {
            var id = Path.GetFileNameWithoutExtension(path);
            var lockPath = In(Running, id + ".lock");
            using var jobLock = Lock(lockPath, wait: false);
            if (jobLock is null) continue; // its daemon is alive and running it
            try
            {
                File.Move(path, In(Queued, id + ".json"));
            }
            catch (FileNotFoundException)
            {
                continue; // it finished between the listing and the lock
            }
            finally
            {
                File.Delete(lockPath);
            }
            var status = ReadStatus(Running, id);
            status.Reason = $"requeued: its daemon ({status.Owner}) stopped while running it";
            WriteStatus(Running, id, status);
            MoveSidecars(id, Running, Queued);
            requeued.Add(id);
        }
        return requeued;
    }

    /// <inheritdoc/>
    /// <remarks>Taken under <c>queue.lock</c>: the folders are read one after another, and a job moved
    /// from running/ back to queued/ between the two reads (a requeue, a stopping daemon) would be in
    /// neither listing. Moves from running/ to queued/ hold that lock; moves on to done/ and failed/ need
    /// not (those folders are read after running/). Without write access to the queue folder (no lock file can be
    /// created), the listing is taken without it.</remarks>
    public IReadOnlyList<JobInfo> List()
    {
        FileStream? queueLock = null;
        try
        {
            queueLock = Lock(QueueLockPath, wait: true);
        }
        catch (UnauthorizedAccessException)
        {
        }
        using (queueLock)
            return new[] { (Queued, JobState.Queued), (Running, JobState.Running), (Done, JobState.Done), (Failed, JobState.Failed) }
                .SelectMany(s => Jobs(s.Item1).Select(path =>
                {
                    var id = Path.GetFileNameWithoutExtension(path);
                    var status = ReadStatus(s.Item1, id);
                    return new JobInfo(id, s.Item2, s.Item2 == JobState.Failed ? status.Reason : null, status.RunFolder, status.Owner);
                }))
                .ToList();
    }

    // Job files of a state, oldest first (submitted ids start with their UTC time).
    IEnumerable<string> Jobs(string state) =>
        Directory.EnumerateFiles(Path.Combine(Root, state), "*.json")
            .Where(p => !Path.GetFileName(p).StartsWith('.'))
            .Order(StringComparer.Ordinal);

    void MoveSidecars(string id, string from, string to)
    {
        foreach (var extension in Sidecars)
        {
            var source = In(from, id + extension);
            if (File.Exists(source)) File.Move(source, In(to, id + extension), overwrite: true);
        }
    }

    /// <summary>An exclusive OS lock on <paramref name="path"/> (created if absent), or null when another
    /// holder has it and <paramref name="wait"/> is false.</summary>
    static FileStream? Lock(string path, bool wait)
    {
        var deadline = DateTime.UtcNow + LockWait;
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (File.Exists(path) || Directory.Exists(Path.GetDirectoryName(path)))
            {
                if (!wait) return null;
                if (DateTime.UtcNow > deadline)
                    throw new IOException($"{path} stayed locked for {LockWait.TotalSeconds} s: another daemon holds the queue and does not let go.");
                Thread.Sleep(10);
            }
        }
    }

    sealed class Status
    {
        public string? Owner { get; set; }
        public DateTimeOffset? Started { get; set; }
        public DateTimeOffset? Finished { get; set; }
        public int Attempts { get; set; }
        public string? Reason { get; set; }
        public string? RunFolder { get; set; }
    }

    Status ReadStatus(string state, string id)
    {
        try
        {
            return JsonSerializer.Deserialize<Status>(File.ReadAllText(In(state, id + ".status"))) ?? new();
        }
        catch (Exception e) when (e is IOException or JsonException)
        {
            return new();
        }
    }

    void WriteStatus(string state, string id, Status status)
    {
        var path = In(state, id + ".status");
        File.WriteAllText(path + ".tmp", JsonSerializer.Serialize(status, new JsonSerializerOptions { WriteIndented = true }));
        File.Move(path + ".tmp", path, overwrite: true);
    }

    sealed class Claim(FolderJobQueue queue, string id, FileStream jobLock, string? previousRunFolder) : IClaimedJob
    {
        bool _finished;

        public string Id => id;
        public string ExperimentPath => queue.In(Running, id + ".json");
        public string LogPath => queue.In(Running, id + ".log");
        public string? PreviousRunFolder => previousRunFolder;
        public CancellationToken Lost => CancellationToken.None; // the OS lock is held until released

        public void Started(string runFolder)
        {
            var status = queue.ReadStatus(Running, id);
            status.RunFolder = runFolder;
            queue.WriteStatus(Running, id, status);
        }

        public void Finish(JobOutcome outcome)
        {
            if (_finished) throw new InvalidOperationException($"job {id} already finished");
            var state = outcome.State switch
            {
                JobState.Done => Done,
                JobState.Failed => Failed,
                JobState.Queued => Queued,
                _ => throw new ArgumentException($"a job cannot finish as {outcome.State}", nameof(outcome)),
            };
            var status = queue.ReadStatus(Running, id);
            status.Finished = queue._clock.GetUtcNow();
            // The run's own error names the job file where it ran (running/); say where it now is.
            status.Reason = outcome.Reason?.Replace(ExperimentPath, queue.In(state, id + ".json"), StringComparison.Ordinal);
            status.RunFolder = outcome.RunFolder ?? status.RunFolder;
            // Someone removed the job file while it ran: the job fails, saying so (whatever the run did),
            // and an empty job file stands in for it in failed/ so that listings show the job and its reason.
            var jobFileGone = !File.Exists(ExperimentPath);
            if (jobFileGone)
            {
                state = Failed;
                status.Reason = $"its job file {ExperimentPath} disappeared while it ran (the run: {outcome.Reason ?? outcome.State.ToString().ToLowerInvariant()})";
            }
            queue.WriteStatus(Running, id, status);
            // Sidecars first, the job file last: its move is the state change others see; the lock
            // is released only once nothing of the job is left in running/. Back to queued/ under
            // queue.lock, as every move into queued/ (List reads queued/ before running/).
            using (var queueLock = state == Queued ? Lock(queue.QueueLockPath, wait: true) : null)
            {
                queue.MoveSidecars(id, Running, state);
                if (jobFileGone) File.WriteAllText(queue.In(state, id + ".json"), "{}");
                else File.Move(ExperimentPath, queue.In(state, id + ".json"));
            }
            File.Delete(queue.In(Running, id + ".lock"));
            _finished = true;
            jobLock.Dispose();
        }

        public void Dispose() => jobLock.Dispose();
    }

    [GeneratedRegex("[^A-Za-z0-9._-]+")]
    private static partial Regex Unsafe();
}
