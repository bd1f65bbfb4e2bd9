using TinyGrow.Host.Commands;

namespace TinyGrow.Host.Progress;

/// <summary>How a run shows its progress: one of the two, never both.</summary>
public enum ProgressMode
{
    /// <summary>Log lines: a line every few seconds while training and downloading (ProgressLog, the downloader).</summary>
    Plain,
    /// <summary>A display redrawn in place on the terminal (<see cref="LiveProgress"/>); log lines are written above it.</summary>
    Live,
}

/// <summary>Chooses the progress display from the <c>Output:Progress</c> setting and where the process writes.</summary>
public static class ProgressDisplay
{
    /// <summary>
    /// "plain" → <see cref="ProgressMode.Plain"/>; "live" → <see cref="ProgressMode.Live"/> for a run or
    /// resume; "auto" → live only when <paramref name="verb"/> trains in this process (run, resume: not
    /// the daemon, whose jobs are child processes with redirected output) and both standard output and
    /// standard error are a terminal (one redirected: a log file, a pipe, CI, a daemon's job) whose
    /// <paramref name="term"/> can redraw (set, not "dumb").
    /// </summary>
    public static ProgressMode Choose(string setting, Verb verb, bool outputRedirected, bool errorRedirected, string? term)
    {
        if (verb is not (Verb.Run or Verb.Resume)) return ProgressMode.Plain;
        return setting.ToLowerInvariant() switch
        {
            "live" => ProgressMode.Live,
            "plain" => ProgressMode.Plain,
            _ => !outputRedirected && !errorRedirected && !string.IsNullOrEmpty(term) && term != "dumb"
                ? ProgressMode.Live
                : ProgressMode.Plain,
        };
    }
}
