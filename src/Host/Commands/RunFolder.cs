using System.Globalization;
using System.Runtime.InteropServices;
using TinyGrow.Host.Configuration;

namespace TinyGrow.Host.Commands;

/// <summary>
/// A run's folder, <c>&lt;root&gt;/&lt;run-id&gt;.partial</c>, claimed with a create that fails when
/// anything (a folder, a file, a symbolic link, even a dangling one) is already at that path, so two
/// runs never share a folder and a link planted in a shared output folder is never followed.
/// </summary>
/// <remarks><see cref="Directory.CreateDirectory(string)"/> succeeds when the folder exists (and
/// follows a link to one), and .NET has no exclusive variant: the claim is the operating system's
/// own <c>mkdir</c> (<c>CreateDirectoryW</c> on Windows), which fails with "exists" in all those cases.</remarks>
public sealed record RunFolder(string RunId, string Partial, string Final)
{
    /// <summary>Most suffixes tried for a timestamp id (<c>20260101-120000-2</c>, <c>-3</c>, …).</summary>
    public const int MaxSuffix = 1000;

    /// <summary>The folders of <paramref name="runId"/> under <paramref name="root"/>.</summary>
    public static RunFolder For(string root, string runId) =>
        new(runId, Path.Combine(root, runId + SettingsValidator.PartialSuffix), Path.Combine(root, runId));

    /// <summary>Whether anything, a dangling link included, is at <paramref name="path"/>.</summary>
    public static bool Occupied(string path) =>
        File.Exists(path) || Directory.Exists(path) || new FileInfo(path).LinkTarget is not null;

    /// <summary>A chosen id already in use, found before the dataset loads so that the error comes
    /// early; the claim itself (<see cref="Claim"/>) is what decides. Null when free or not chosen.</summary>
    public static string? CheckChosen(string root, string chosenId)
    {
        if (chosenId.Length == 0) return null;
        var folder = For(root, chosenId);
        return Occupied(folder.Final) || Occupied(folder.Partial) ? InUse(folder) : null;
    }

    /// <summary>Creates the run's <c>.partial</c> folder, and only it, under <paramref name="root"/>
    /// (created if missing). A chosen id is tried once; an empty one becomes the UTC timestamp of
    /// <paramref name="now"/>, with a suffix -2, -3, … while that is taken.</summary>
    /// <exception cref="RunFolderException">The id is taken, or the folder cannot be created.</exception>
    public static RunFolder Claim(string root, string chosenId, DateTimeOffset now)
    {
        try
        {
            Directory.CreateDirectory(root);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RunFolderException($"Output:Directory = '{root}' cannot be created ({e.Message}). Choose a writable --Output:Directory.");
        }
        var stamp = now.UtcDateTime.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture);
        var candidates = chosenId.Length > 0
            ? new[] { chosenId }
            : Enumerable.Range(1, MaxSuffix).Select(n => n == 1 ? stamp : $"{stamp}-{n}");
        foreach (var id in candidates)
        {
            var folder = For(root, id);
            if (Occupied(folder.Final)) continue;
            var failure = CreateExclusive(folder.Partial);
            if (failure == "") continue; // taken
            if (failure is not null)
                throw new RunFolderException($"Output:Directory = '{root}': cannot create {folder.Partial} ({failure}). Choose a writable --Output:Directory.");
            if (!Occupied(folder.Final)) return folder;
            // A run of the same id finished between the two checks: let it have the id.
            Directory.Delete(folder.Partial);
        }
        throw new RunFolderException(chosenId.Length > 0
            ? InUse(For(root, chosenId))
            : $"Output:Directory = '{root}': the run ids {stamp} to {stamp}-{MaxSuffix} are all taken. Choose an --Output:RunId.");
    }

    static string InUse(RunFolder folder) =>
        $"Output:RunId = '{folder.RunId}': {(Occupied(folder.Final) ? folder.Final : folder.Partial)} already exists. " +
        "Choose another --Output:RunId, leave it empty for a timestamp, or remove that folder.";

    // null: created; "": something is already there; otherwise the system's reason.
    static string? CreateExclusive(string path)
    {
        if (OperatingSystem.IsWindows())
            return CreateDirectoryW(path, IntPtr.Zero) ? null
                : Marshal.GetLastPInvokeError() == ErrorAlreadyExists ? "" : Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError());
        return mkdir(path, 0b111_111_111) == 0 ? null
            : Marshal.GetLastPInvokeError() == EEXIST ? "" : Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError());
    }

    const int EEXIST = 17; // Linux and macOS alike
    const int ErrorAlreadyExists = 183;

    [DllImport("libc", SetLastError = true)]
    static extern int mkdir([MarshalAs(UnmanagedType.LPUTF8Str)] string path, uint mode);

    [DllImport("kernel32", SetLastError = true, CharSet = CharSet.Unicode)]
    [return: MarshalAs(UnmanagedType.Bool)]
    static extern bool CreateDirectoryW(string path, IntPtr securityAttributes);
}

/// <summary>The run folder cannot be claimed; the message names the folder and the fix.</summary>
public sealed class RunFolderException(string message) : Exception(message);
