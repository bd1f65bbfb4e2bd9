namespace TinyGrow.Host.Daemon;

/// <summary>Where a job is.</summary>
public enum JobState
{
    /// <summary>Waiting to be claimed.</summary>
    Queued,
    /// <summary>Claimed by a daemon, which is running it.</summary>
    Running,
    /// <summary>Its run completed (exit 0).</summary>
    Done,
    /// <summary>It could not run, or its run failed; <see cref="JobInfo.Reason"/> says why.</summary>
    Failed,
}

/// <summary>A job as <c>tinygrow jobs</c> lists it.</summary>
/// <param name="Id">The job's id (also the run id of its first attempt).</param>
/// <param name="State">Where it is.</param>
/// <param name="Reason">Why it failed (null unless failed).</param>
/// <param name="RunFolder">The run folder of its last attempt, once known.</param>
/// <param name="Owner">The daemon that ran or runs it (host:pid), once claimed.</param>
public sealed record JobInfo(string Id, JobState State, string? Reason = null, string? RunFolder = null, string? Owner = null);

/// <summary>How a claimed job ended.</summary>
/// <param name="State"><see cref="JobState.Done"/>, <see cref="JobState.Failed"/>, or
/// <see cref="JobState.Queued"/> to put it back (the daemon is stopping).</param>
/// <param name="Reason">Why it failed, or null.</param>
/// <param name="RunFolder">Where its run wrote, or null.</param>
public sealed record JobOutcome(JobState State, string? Reason, string? RunFolder);

/// <summary>A job this daemon holds: nobody else runs it until it is finished or disposed (a
/// disposed, unfinished claim is left for recovery, as if the daemon had died).</summary>
public interface IClaimedJob : IDisposable
{
    /// <summary>The job's id.</summary>
    string Id { get; }

    /// <summary>The experiment file to run (readable while the job is claimed).</summary>
    string ExperimentPath { get; }

    /// <summary>Where the run's output (standard output and error) may be appended while it runs;
    /// kept with the job when it finishes.</summary>
    string LogPath { get; }

    /// <summary>The run folder of the job's previous attempt (a daemon that died or stopped while
    /// running it), or null: the daemon resumes that run from its checkpoint instead of starting again.</summary>
    string? PreviousRunFolder { get; }

    /// <summary>Signalled when the claim is lost (another daemon took the job over after the lease
    /// expired): the run must stop, and <see cref="Finish"/> records nothing.</summary>
    CancellationToken Lost { get; }

    /// <summary>Records where this attempt's run writes (<c>&lt;run-id&gt;.partial</c>), before it starts:
    /// the folder a later attempt resumes if this daemon dies.</summary>
    void Started(string runFolder);

    /// <summary>Records the outcome and moves the job to its state.</summary>
    void Finish(JobOutcome outcome);
}

/// <summary>A queue of experiment files, each run once. Implementations: <see cref="FolderJobQueue"/>
/// (one host) and <see cref="PostgresJobQueue"/> (many daemons on many hosts).</summary>
public interface IJobQueue
{
    /// <summary>What the queue is and who this daemon is in it, for the daemon's first log line.</summary>
    string Description { get; }

    /// <summary>Adds a job whose experiment file holds <paramref name="experimentJson"/>; the job
    /// appears whole or not at all. <paramref name="name"/> (e.g. the file's name) goes into its id.</summary>
    JobInfo Submit(string name, string experimentJson);

    /// <summary>Claims the oldest queued job, or returns null when there is none. Two daemons never
    /// claim the same job.</summary>
    IClaimedJob? TryClaim();

    /// <summary>Puts back in the queue the jobs whose daemon died while running them; returns their ids.</summary>
    IReadOnlyList<string> RequeueAbandoned();

    /// <summary>Every job and its state, oldest first within each state.</summary>
    IReadOnlyList<JobInfo> List();
}
