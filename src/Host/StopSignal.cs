using System.Runtime.InteropServices;

namespace TinyGrow.Host;

/// <summary>Whether the process was asked to stop with SIGTERM (a service manager, a scheduler, a
/// deploy) rather than Ctrl-C: both cancel the run, and both checkpoint, but only a SIGTERM stop at a
/// checkpoint exits 0. The host's console lifetime still handles the signal (it stops the host).</summary>
public static class StopSignal
{
    static volatile bool _terminated;
    static PosixSignalRegistration? _registration;

    /// <summary>SIGTERM was received.</summary>
    public static bool Terminated => _terminated;

    /// <summary>Starts listening (once per process).</summary>
    public static void Listen() =>
        _registration ??= PosixSignalRegistration.Create(PosixSignal.SIGTERM, _ => _terminated = true);
}
