using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using TinyGrow.Host.Configuration;

namespace TinyGrow.Host.Daemon;

/// <summary>
/// Runs one job as a child process, <c>tinygrow run --experiment &lt;job&gt; --Output:Directory=…
/// --Output:RunId=&lt;job id&gt;</c>: the same code path as a run from the command line, and a native
/// crash (libtorch aborting, CUDA out of memory, two TorchSharps) or a leak ends that job, not
/// the daemon. The exit code says how the run ended (docs/verbs.md's table); the reason of a failure is
/// taken from the run's error lines.
/// </summary>
public sealed class JobRunner(TinyGrowSettings settings, ILogger<JobRunner> log, IReadOnlyList<string>? command = null)
{
    /// <summary>How long a run gets to stop after SIGTERM before it is killed (the run's own grace, plus margin).</summary>
    public static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(20);

    /// <summary>The command that starts <c>tinygrow</c>: this executable (through <c>dotnet</c> when
    /// it runs as a DLL).</summary>
    public static IReadOnlyList<string> ThisApplication()
    {
        var process = Environment.ProcessPath ?? "dotnet";
        return Path.GetFileNameWithoutExtension(process) == "dotnet"
            ? [process, Path.Combine(AppContext.BaseDirectory, "tinygrow.dll")]
            : [process];
    }

    readonly IReadOnlyList<string> _command = command ?? ThisApplication();

    /// <summary>Runs <paramref name="job"/>; returns its outcome (<see cref="JobState.Queued"/> when
    /// <paramref name="stopping"/> interrupted it: it is run again later).</summary>
    public async Task<JobOutcome> RunAsync(IClaimedJob job, CancellationToken stopping)
    {
        var output = Path.GetFullPath(settings.Output.Directory);
        var previous = job.PreviousRunFolder;
        if (previous is null && LastAttempt(output, job.Id) is { } found)
        {
            // The queue had no record of an earlier attempt (a damaged or deleted status file), yet one ran:
            // its folder is named by the job's id, and its checkpoint is the job's progress.
            log.LogWarning("Job {Job}: its queue record names no earlier run folder, but {Folder} is one (named by the job's id); it is taken as the previous attempt", job.Id, found);
            previous = found;
        }
        var resume = Resumable(previous);
        if (resume is null && Finished(previous) is { } finished)
            return new(JobState.Done, null, finished); // it completed, but its daemon died before recording it
        var runId = resume is null ? FreeRunId(output, job.Id) : Path.GetFileName(resume)[..^SettingsValidator.PartialSuffix.Length];
        if (resume is not null) output = Path.GetDirectoryName(resume)!;
        var info = new ProcessStartInfo(_command[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true, // not the daemon's: a child never reads the terminal
        };
        foreach (var a in _command.Skip(1)) info.ArgumentList.Add(a);
        // An interrupted attempt is continued from its checkpoint exactly as `tinygrow resume` does;
        // its settings are the run's config.json.
        var arguments = resume is null
            ? new[] { "run", "--experiment", job.ExperimentPath, $"--Output:Directory={output}", $"--Output:RunId={runId}" }
            : ["resume", resume];
        foreach (var a in arguments) info.ArgumentList.Add(a);
        // The run stops at once if this daemon dies (ParentWatch): a daemon that takes the job over
        // must not find it still writing the run folder.
        info.Environment[ParentWatch.Variable] = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);

        var errors = new Queue<string>();
        using var logFile = new StreamWriter(job.LogPath, append: true) { AutoFlush = true };
        void Line(string? line, bool error)
        {
            if (line is null) return;
            lock (logFile)
            {
                logFile.WriteLine(line);
                if (!error) return;
                errors.Enqueue(line);
                if (errors.Count > 40) errors.Dequeue();
            }
        }
        lock (logFile) logFile.WriteLine($"# {DateTimeOffset.UtcNow:O} {Environment.MachineName}:{Environment.ProcessId}: {string.Join(' ', info.ArgumentList.Prepend(info.FileName))}");

        job.Started(Path.Combine(output, runId + SettingsValidator.PartialSuffix));
        using var process = new Process { StartInfo = info };
        process.OutputDataReceived += (_, e) => Line(e.Data, false);
        process.ErrorDataReceived += (_, e) => Line(e.Data, true);
        try
        {
            process.Start();
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            return new(JobState.Failed, $"could not start {info.FileName}: {e.Message}", null);
        }
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        process.StandardInput.Close();
        if (resume is null)
            log.LogInformation("Job {Job}: started (pid {Pid}), run folder {Folder}", job.Id, process.Id, Path.Combine(output, runId));
        else
            log.LogInformation("Job {Job}: resuming its interrupted run {Folder} from its checkpoint (pid {Pid})", job.Id, resume, process.Id);

        var interrupted = false;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(stopping, job.Lost);
        try
        {
            await process.WaitForExitAsync(stop.Token);
        }
        catch (OperationCanceledException)
        {
            // The daemon is stopping: ask the run to stop as Ctrl-C would (it keeps its .partial
            // folder), then insist.
            interrupted = true;
            // A lost lease: another daemon runs the job now, maybe in this same run folder, so no
            // checkpoint may be written on the way out.
            if (job.Lost.IsCancellationRequested && !process.HasExited) process.Kill(entireProcessTree: true);
            if (!process.HasExited) _ = kill(process.Id, 15);
            using var grace = new CancellationTokenSource(StopGrace);
            try { await process.WaitForExitAsync(grace.Token); }
            catch (OperationCanceledException) { process.Kill(entireProcessTree: true); }
        }
        await process.WaitForExitAsync(CancellationToken.None); // the output is read to its end
        var code = process.ExitCode;
        var final = Path.Combine(output, runId);
        var partial = final + SettingsValidator.PartialSuffix;
        var folder = Directory.Exists(final) ? final : Directory.Exists(partial) ? partial : null;
        if (code == ExitCodes.Ok && !interrupted) return new(JobState.Done, null, folder);
        if (interrupted)
            return new(JobState.Queued, job.Lost.IsCancellationRequested
                ? $"stopped: the lease was lost to another daemon (exit {code})"
                : $"requeued: the daemon stopped during the run (exit {code})", folder);
        string[] lines;
        lock (logFile) lines = errors.ToArray();
        return new(JobState.Failed, $"exit {code} ({Meaning(code)}): {Reason(lines)}", folder);
    }

    static string Meaning(int code) => code switch
    {
        ExitCodes.RunFailed => "the run failed, or an unexpected error",
        ExitCodes.BadConfiguration => "bad experiment or configuration",
        ExitCodes.DatasetError => "dataset missing or corrupt",
        ExitCodes.PluginFault => "a plugin broke its contract",
        ExitCodes.Cancelled => "interrupted",
        > 128 => $"killed by signal {code - 128}",
        _ => "undocumented exit code",
    };

    // The run's error lines ("fail:", "crit:", "tinygrow: ..."), else its last lines.
    static string Reason(string[] lines)
    {
        var errors = lines.Where(l => l.Contains(" fail: ", StringComparison.Ordinal) || l.Contains(" crit: ", StringComparison.Ordinal) || l.StartsWith("tinygrow:", StringComparison.Ordinal)).ToArray();
        var chosen = errors.Length > 0 ? errors : lines.TakeLast(3).ToArray();
        return chosen.Length == 0 ? "no output" : string.Join(" | ", chosen.Select(l => l.Trim()));
    }

    // The previous attempt's run folder if it can be resumed: unfinished (.partial), with its
    // settings and a checkpoint that passes its checksum. Without a checkpoint the job starts again.
    static string? Resumable(string? previous)
    {
        if (previous is null || !previous.EndsWith(SettingsValidator.PartialSuffix, StringComparison.Ordinal) || !Directory.Exists(previous))
            return null;
        if (!File.Exists(Path.Combine(previous, "config.json"))) return null;
        var (checkpoint, _) = TinyGrow.Core.Checkpoint.latest(previous);
        return checkpoint is not null ? previous : null; // F#'s None is null
    }

    // The previous attempt's folder renamed to its final name: that run completed.
    static string? Finished(string? previous)
    {
        if (previous is null || !previous.EndsWith(SettingsValidator.PartialSuffix, StringComparison.Ordinal)) return null;
        var final = previous[..^SettingsValidator.PartialSuffix.Length];
        return !Directory.Exists(previous) && File.Exists(Path.Combine(final, "metrics.jsonl")) ? final : null;
    }

    // The run folder (as its .partial name) of the job's latest earlier attempt in `output`, found by the
    // run ids FreeRunId gives (id, id-2, id-3, …): the last one taken, .partial or finished; null when none.
    static string? LastAttempt(string output, string id)
    {
        string? last = null;
        for (var n = 1; ; n++)
        {
            var candidate = Path.Combine(output, RunIdOf(id, n));
            if (!Path.Exists(candidate) && !Path.Exists(candidate + SettingsValidator.PartialSuffix)) return last;
            last = candidate + SettingsValidator.PartialSuffix;
        }
    }

    static string RunIdOf(string id, int attempt)
    {
        var safe = id.Length > 90 ? id[..90] : id;
        return attempt == 1 ? safe : $"{safe}-{attempt}";
    }

    // The job's id as its run id; a second attempt (after a daemon died) gets -2, -3, … so that the
    // first attempt's .partial folder is kept and not refused as "in use".
    static string FreeRunId(string output, string id)
    {
        for (var n = 1; ; n++)
        {
            var candidate = RunIdOf(id, n);
            var path = Path.Combine(output, candidate);
            if (!Path.Exists(path) && !Path.Exists(path + SettingsValidator.PartialSuffix)) return candidate;
        }
    }

    [DllImport("libc", SetLastError = true)]
    static extern int kill(int pid, int signal);
}
