using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using TinyGrow.Host.Configuration;

namespace TinyGrow.Host.Daemon;

/// <summary>
/// <c>tinygrow daemon</c>: takes jobs from the queue and runs them one at a time until the host
/// stops (SIGTERM: the running job is asked to stop and goes back to the queue). A job that fails
/// or is malformed ends in failed/ with its reason; the daemon goes on. A queue server that cannot
/// be reached (<see cref="QueueUnavailableException"/>: a network partition, a restart) is waited
/// for, polling; any other error of the queue itself (its folder unwritable) stops the daemon: the
/// host reports it and exits 1.
/// </summary>
public sealed class DaemonService(IJobQueue queue, JobRunner runner, TinyGrowSettings settings, ILogger<DaemonService> log) : BackgroundService
{
    readonly List<string> _ran = [];

    /// <summary>The ids of the jobs this daemon has run to an outcome, in order.</summary>
    public IReadOnlyList<string> Ran { get { lock (_ran) return _ran.ToList(); } }

    /// <inheritdoc/>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        var poll = TimeSpan.FromSeconds(settings.Daemon.PollSeconds);
        log.LogInformation("Daemon: queue {Queue}, results in {Output}, polling every {Poll} s",
            queue.Description, Path.GetFullPath(settings.Output.Directory), poll.TotalSeconds);
        while (!stoppingToken.IsCancellationRequested)
        {
            IClaimedJob? claimed;
            try
            {
                // Every time, not only at start: another daemon on the same queue may have died.
                foreach (var id in queue.RequeueAbandoned())
                    log.LogWarning("Job {Job}: its daemon died while running it; requeued", id);
                claimed = queue.TryClaim();
            }
            catch (QueueUnavailableException e)
            {
                log.LogWarning("Queue unavailable, trying again in {Poll} s: {Error}", poll.TotalSeconds, e.Message);
                claimed = null;
            }
            using var job = claimed;
            if (job is null)
            {
                try { await Task.Delay(poll, stoppingToken); }
                catch (OperationCanceledException) { break; }
                continue;
            }
            log.LogInformation("Job {Job}: claimed", job.Id);
            JobOutcome outcome;
            try
            {
                outcome = await runner.RunAsync(job, stoppingToken);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                outcome = new(JobState.Failed, $"the daemon could not run it: {e.Message}", null);
            }
            catch (QueueUnavailableException e)
            {
                // Its run folder could not be recorded before the start: not run; back in the queue.
                outcome = new(JobState.Queued, $"requeued: not started, the queue was unavailable ({e.Message})", null);
            }
            try
            {
                job.Finish(outcome);
            }
            catch (QueueUnavailableException e)
            {
                // Not recorded: once the lease expires another daemon takes the job, and finds the
                // run's folder finished (nothing run again) or resumes it.
                log.LogError("Job {Job}: its outcome ({State}) could not be recorded: {Error}", job.Id, outcome.State, e.Message);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The queue folder was changed under the daemon (files moved or removed by hand): this job's
                // record is lost, the daemon goes on with the next.
                log.LogError("Job {Job}: its outcome ({State}) could not be recorded in the queue folder: {Error}", job.Id, outcome.State, e.Message);
            }
            if (outcome.State != JobState.Queued) lock (_ran) _ran.Add(job.Id);
            switch (outcome.State)
            {
                case JobState.Done:
                    log.LogInformation("Job {Job}: done, results in {Folder}", job.Id, outcome.RunFolder);
                    break;
                case JobState.Queued:
                    log.LogWarning("Job {Job}: {Reason}", job.Id, outcome.Reason);
                    break;
                default:
                    log.LogError("Job {Job}: failed: {Reason}", job.Id, outcome.Reason);
                    break;
            }
        }
        log.LogInformation("Daemon: stopped");
    }
}
