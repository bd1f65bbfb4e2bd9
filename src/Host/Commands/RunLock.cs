using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace TinyGrow.Host.Commands;

/// <summary>
/// One run folder, one writer: <c>run</c>, <c>resume</c> and the daemon's job (a <c>run</c> or
/// <c>resume</c> child) hold an exclusive operating-system lock on <c>&lt;folder&gt;/run.lock</c> for
/// as long as they may write the folder. Two <c>resume</c>s of one folder fused their metrics lines
/// and trained one run twice; the second writer is now refused (exit 2) with the holder's pid.
/// </summary>
/// <remarks>The lock is .NET's <see cref="FileShare.None"/> (<c>flock(LOCK_EX)</c> on Unix, a sharing
/// mode on Windows), as the folder queue's job locks: the system releases it with the process, so a
/// run killed with SIGKILL leaves no stale lock, only the file. The holder writes its pid into the
/// file for the refusal's message; a reader cannot open the file through .NET while it is locked (a
/// shared open asks for <c>flock(LOCK_SH)</c>), so on Unix the pid is read with the system's plain
/// <c>open</c>, which takes no lock.</remarks>
public sealed class RunLock : IDisposable
{
    /// <summary>The lock file's name inside a run folder.</summary>
    public const string FileName = "run.lock";

    readonly FileStream _stream;

    RunLock(FileStream stream, string path)
    {
        _stream = stream;
        Path = path;
    }

    /// <summary>The lock file.</summary>
    public string Path { get; }

    /// <summary>Takes the lock on <paramref name="folder"/> (creating <see cref="FileName"/> in it).</summary>
    /// <exception cref="RunFolderException">Another process holds it (the message names its pid and
    /// the fix), or the file cannot be created.</exception>
    public static RunLock Take(string folder)
    {
        var path = System.IO.Path.Combine(folder, FileName);
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException) when (File.Exists(path))
        {
            var holder = HolderPid(path);
            var who = holder is { } pid ? $"process {pid}" : "another process";
            var check = holder is { } p ? $" (ps -p {p})" : "";
            throw new RunFolderException(
                $"{folder} is being written by {who}{check}: another run or resume of this folder is still going (its lock is {path}). " +
                "Wait for it to end, or stop it (kill that pid: it checkpoints on SIGTERM) and then resume; two writers would mix their metrics and train the run twice.");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RunFolderException($"{folder}: cannot create its lock file {path} ({e.Message}). The run folder must be writable.");
        }
        try
        {
            var text = Encoding.ASCII.GetBytes(Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + "\n");
            stream.SetLength(0);
            stream.Write(text);
            stream.Flush(flushToDisk: false);
        }
        catch (IOException)
        {
            // The pid is only for the message of a refused writer; the lock is what counts.
        }
        return new RunLock(stream, path);
    }

    /// <summary>The pid written in a lock file, read without taking any lock; null when unknown.</summary>
    public static int? HolderPid(string path)
    {
        string text;
        try
        {
            if (OperatingSystem.IsWindows()) return null; // the holder's sharing mode forbids any read
            var fd = open(path, 0 /* O_RDONLY */);
            if (fd < 0) return null;
            using var handle = new SafeFileHandle(fd, ownsHandle: true);
            using var stream = new FileStream(handle, FileAccess.Read, bufferSize: 0);
            var buffer = new byte[32];
            var n = stream.Read(buffer);
            text = Encoding.ASCII.GetString(buffer, 0, n);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return null;
        }
        return int.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) ? pid : null;
    }

    /// <summary>Deletes the lock file of a finished run (renamed, so no <c>resume</c> can take it) and
    /// releases the lock. Only for a folder that no writer may take again: deleting the file of a
    /// folder still open to writers would let a second one lock a new file beside the first one's.</summary>
    public void DeleteAndRelease(string finishedFolder)
    {
        try { File.Delete(System.IO.Path.Combine(finishedFolder, FileName)); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        Dispose();
    }

    /// <summary>Releases the lock (the file stays: see <see cref="DeleteAndRelease"/>).</summary>
    public void Dispose() => _stream.Dispose();

    [DllImport("libc", SetLastError = true)]
    static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);
}
