using Microsoft.Extensions.Options;
using TinyGrow.Abstractions;
using TinyGrow.Host.Commands;
using TinyGrow.Host.Configuration;

namespace TinyGrow.Host;

/// <summary>The last line of defence: an exception that escaped every verb becomes one of the
/// documented <see cref="ExitCodes"/> and a report on standard error (not through the logger, which
/// may be what failed), instead of the runtime's abort (exit 134) with a bare stack trace.</summary>
public static class Failure
{
    /// <summary>The exit code for <paramref name="exception"/>.</summary>
    public static int ExitCode(Exception exception) => exception switch
    {
        InvalidConfigurationException or OptionsValidationException or RunFolderException or Daemon.QueueUnavailableException => ExitCodes.BadConfiguration,
        DatasetException => ExitCodes.DatasetError,
        TinyGrow.Core.ProposalCheck.PluginFaultException => ExitCodes.PluginFault,
        OperationCanceledException => ExitCodes.Cancelled,
        _ => ExitCodes.RunFailed,
    };

    /// <summary>Writes the report to <paramref name="error"/>; returns the exit code.</summary>
    /// <param name="exception">What escaped.</param>
    /// <param name="runFolder">The run's folder if one was claimed (it is kept), else null.</param>
    /// <param name="error">Standard error.</param>
    public static int Report(Exception exception, string? runFolder, TextWriter error)
    {
        var code = ExitCode(exception);
        var where = runFolder is not null ? $"What the run wrote is kept in {runFolder}."
            : exception is Daemon.QueueUnavailableException ? "Nothing was queued or changed." : "No run folder was written.";
        if (code == ExitCodes.RunFailed)
        {
            // Not an error the code foresaw: say so, with the trace a bug report needs.
            error.WriteLine($"tinygrow: unexpected error ({exception.GetType().FullName}): {exception.Message} {where} Exit code {code}.");
            error.WriteLine(exception.ToString());
        }
        else
            error.WriteLine($"tinygrow: {exception.Message} {where}");
        return code;
    }
}
