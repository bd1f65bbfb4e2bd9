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
        try
        {
            foreach (var warning in RunReport.Write(runFolder))
                error.WriteLine($"tinygrow: warning: {warning}");
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
