using System.Runtime.InteropServices;
using TinyGrow.Host.Reports;

namespace TinyGrow.Host.Commands;

/// <summary><c>tinygrow report &lt;run-folder&gt;</c>: the figures and report.md of any run folder,
/// finished or not (a <c>.partial</c> folder too). Needs no plugin, device or configuration.</summary>
public static class ReportCommand
{
    /// <summary>Writes the report; returns <see cref="ExitCodes.Ok"/>, or
    /// <see cref="ExitCodes.BadConfiguration"/> when the folder or its metrics.jsonl is missing or
    /// corrupt (one line on <paramref name="error"/> naming the file; nothing written).</summary>
    public static int Execute(string runFolder, TextWriter output, TextWriter error)
    {
        if (!Directory.Exists(runFolder))
        {
            error.WriteLine($"tinygrow: report: {runFolder} is not a folder. Give a run folder (runs/<run-id>), which holds metrics.jsonl.");
            return ExitCodes.BadConfiguration;
        }
        // Ctrl-C or SIGTERM stops the report between two files, its temporaries removed and nothing replaced (the
        // signal's default would kill it mid-write and leave them).
        using var stop = new CancellationTokenSource();
        void Stop(PosixSignalContext context) { context.Cancel = true; stop.Cancel(); }
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        try
        {
            foreach (var warning in RunReport.Write(runFolder, stop.Token))
                error.WriteLine($"tinygrow: warning: {warning}");
        }
        catch (OperationCanceledException)
        {
            error.WriteLine($"tinygrow: report: stopped by a signal; nothing in {runFolder} was replaced. Run the report again.");
            return ExitCodes.Cancelled;
        }
        catch (ReportException e)
        {
            error.WriteLine($"tinygrow: report: {e.Message}");
            return ExitCodes.BadConfiguration;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The folder cannot take the report (read-only, owned by another user, a folder where a figure goes, a full disk).
            error.WriteLine($"tinygrow: report: cannot write into {runFolder} ({e.Message}). Make the folder writable, or copy the run folder somewhere writable, and run the report again.");
            return ExitCodes.BadConfiguration;
        }
        output.WriteLine($"Report written: {Path.Combine(runFolder, RunReport.Markdown)} ({string.Join(", ", RunReport.Figures)})");
        return ExitCodes.Ok;
    }
}
