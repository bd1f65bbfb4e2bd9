using System.Runtime.InteropServices;

namespace TinyGrow.Host;

/// <summary>Whether the process was asked to stop with SIGTERM (a service manager, a scheduler, a
/// deploy) rather than Ctrl-C: both cancel the run, and both checkpoint, but only a SIGTERM stop at a
/// checkpoint exits 0. The host's console lifetime still handles the signals (it stops the host).
/// .NET runs a signal's handlers one after another on one thread, in no fixed order; the host's
/// cancels the run, whose stop path can then run on that same thread before our handler has recorded
/// the signal. The stop path waits for it with <see cref="WaitForSignal"/> on another thread (seen in
/// 2 of 4 clean-clone CI runs: a SIGTERM stop reported as Ctrl-C, exit 130).</summary>
public static class StopSignal
{
    const int None = 0, Interrupt = 2, Terminate = 15;
    static volatile int _signal = None;
    static volatile bool _finished;
    static PosixSignalRegistration? _terminate, _interrupt;

    /// <summary>SIGTERM was received.</summary>
    public static bool Terminated => _signal == Terminate;

    /// <summary>Starts listening (once per process). A SIGTERM outranks a Ctrl-C received before it.</summary>
    public static void Listen()
    {
        _terminate ??= PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            _signal = Terminate;
            Ignore(context);
        });
        _interrupt ??= PosixSignalRegistration.Create(PosixSignal.SIGINT, context =>
        {
            if (_signal == None) _signal = Interrupt;
            Ignore(context);
        });
    }

    /// <summary>The command has its exit code: a stop signal from now on changes nothing. Without this, a
    /// SIGTERM that arrived after a run's "done" line, once the host had released its own handlers, ended the
    /// process with the shell's 143 although the run was complete.</summary>
    public static void Finished() => _finished = true;

    static void Ignore(PosixSignalContext context)
    {
        if (_finished) context.Cancel = true;
    }

    /// <summary>Waits at most <paramref name="timeout"/> until a stop signal has been recorded; false if
    /// none was (the stop came from elsewhere).</summary>
    public static bool WaitForSignal(TimeSpan timeout) => SpinWait.SpinUntil(() => _signal != None, timeout);
}
