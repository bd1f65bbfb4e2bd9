using System.Runtime.InteropServices;

namespace TinyGrow.Host.Daemon;

/// <summary>
/// A run started by a daemon ends itself at once when that daemon dies (SIGKILL, a crash): the
/// daemon that takes the job over resumes the run folder, and must not find the orphan still writing
/// it. The daemon names itself in <see cref="Variable"/>; the run checks its parent process four
/// times a second and kills itself with SIGKILL when it has been reparented. Its last checkpoint
/// stands, as after any SIGKILL. (Linux's PR_SET_PDEATHSIG is tied to the thread that forked,
/// which in .NET may be a pool thread that retires: not usable here.)
/// </summary>
public static class ParentWatch
{
    /// <summary>The environment variable holding the daemon's process id. Not prefixed <c>TINYGROW_</c>,
    /// which would make it a configuration key.</summary>
    public const string Variable = "TINYGROWD_PID";

    static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(250);

    /// <summary>Starts watching when <see cref="Variable"/> is set (this process is a daemon's run).</summary>
    public static void StartIfDaemonChild()
    {
        if (!int.TryParse(Environment.GetEnvironmentVariable(Variable), out var daemon) || !OperatingSystem.IsLinux()) return;
        var thread = new Thread(() =>
        {
            while (getppid() == daemon) Thread.Sleep(Interval);
            Console.Error.WriteLine($"tinygrow: the daemon that started this run (pid {daemon}) is gone; stopping now (the last checkpoint stands, and the daemon that takes the job over resumes from it).");
            kill(Environment.ProcessId, 9);
        }) { IsBackground = true, Name = "parent watch" };
        thread.Start();
    }

    [DllImport("libc")]
    static extern int getppid();

    [DllImport("libc")]
    static extern int kill(int pid, int signal);
}
