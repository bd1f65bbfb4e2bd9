using System.Formats.Tar;
using TinyGrow.Abstractions;

namespace TinyGrow.Datasets.Downloads;

/// <summary>
/// Extracts a .tar.gz archive safely: an entry whose path is absolute or climbs out with "..", or
/// that is a link or a device, refuses the whole archive (a link could make a later entry write
/// outside the folder). Entries are written into a hidden staging folder inside the target folder
/// (same file system, so moves are renames), and the top-level entries are then moved into place,
/// all or none, so a dataset folder appears whole or not at all.
/// </summary>
public static class TarGzArchive
{
    // A staging folder untouched for this long belongs to a killed extraction (the CIFAR archives
    // extract in seconds).
    static readonly TimeSpan StaleStaging = TimeSpan.FromHours(1);

    /// <summary>Extracts <paramref name="archive"/> into <paramref name="folder"/> (created if needed).</summary>
    /// <returns>The top-level names the archive put into <paramref name="folder"/>.</returns>
    /// <exception cref="DatasetException">The archive is corrupt or holds an unsafe entry, an entry
    /// cannot be written, or a top-level entry already exists in <paramref name="folder"/>; nothing
    /// was added to the folder.</exception>
    public static IReadOnlyList<string> Extract(string archive, string folder, CancellationToken cancellation = default)
    {
        folder = Path.GetFullPath(folder);
        Directory.CreateDirectory(folder);
        var prefix = $".extracting-{Path.GetFileName(archive)}-";
        RemoveStaleStaging(folder, prefix);
        var staging = Path.Combine(folder, prefix + Guid.NewGuid().ToString("N"));
        try
        {
            Directory.CreateDirectory(staging);
            ExtractInto(archive, staging, cancellation);
            var tops = Directory.EnumerateFileSystemEntries(staging).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToList();
            MoveAllOrNone(archive, staging, folder, tops);
            return tops;
        }
        finally
        {
            if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        }
    }

    static void MoveAllOrNone(string archive, string staging, string folder, IReadOnlyList<string> tops)
    {
        var moved = new List<string>();
        try
        {
            foreach (var top in tops)
            {
                var to = Path.Combine(folder, top);
                if (Path.Exists(to))
                    throw new DatasetException($"{archive}: {to} already exists; move it away (or delete it) and run again.");
                Move(Path.Combine(staging, top), to);
                moved.Add(top);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or DatasetException)
        {
            foreach (var top in moved) Move(Path.Combine(folder, top), Path.Combine(staging, top));
            if (e is DatasetException) throw;
            throw new DatasetException($"{archive}: could not move the extracted files into {folder} ({e.Message}); nothing was added.", e);
        }
    }

    static void Move(string from, string to)
    {
        if (Directory.Exists(from)) Directory.Move(from, to);
        else File.Move(from, to);
    }

    static void RemoveStaleStaging(string folder, string prefix)
    {
        foreach (var stale in Directory.EnumerateDirectories(folder, prefix + "*"))
            if (DateTime.UtcNow - Directory.GetLastWriteTimeUtc(stale) > StaleStaging)
                try { Directory.Delete(stale, recursive: true); } catch (IOException) { }
    }

    static void ExtractInto(string archive, string staging, CancellationToken cancellation)
    {
        var root = staging + Path.DirectorySeparatorChar;
        TarEntry? entry = null;
        try
        {
            using var file = File.OpenRead(archive);
            using var gzip = new VerifiedGzipStream(file);
            using var reader = new TarReader(gzip);
            while ((entry = reader.GetNextEntry()) is not null)
            {
                cancellation.ThrowIfCancellationRequested();
                switch (entry.EntryType)
                {
                    case TarEntryType.GlobalExtendedAttributes:
                        break; // metadata for the whole archive (git archive writes one), nothing to extract
                    case TarEntryType.Directory:
                        Directory.CreateDirectory(SafeTarget(archive, entry, root, isFile: false));
                        break;
                    case TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile:
                        var target = SafeTarget(archive, entry, root, isFile: true);
                        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                        using (var output = new FileStream(target, FileMode.CreateNew, FileAccess.Write))
                            CopyChecked(entry.DataStream, output, cancellation);
                        break;
                    default:
                        throw new DatasetException($"{archive}: entry '{entry.Name}' is a {entry.EntryType}; only files and folders are extracted (a link could point outside the target folder). The archive is not the published one: delete it and download it again.");
                }
            }
            entry = null;
            // The tar ends before its gzip stream does: without reading on to the trailer, a corrupt
            // or cut archive would be extracted unnoticed.
            gzip.ReadToEndAndVerify(cancellation);
        }
        // TarReader reports a damaged header in several ways: an entry type it does not support
        // (a flipped type byte can read as 'S', sparse), a number out of range, a bad field, a PAX
        // header whose size field is larger than it accepts (InvalidOperationException; found by
        // `make bench ARGS=fuzz-readers`).
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or FormatException or NotSupportedException
                                      or OverflowException or ArgumentException or InvalidOperationException)
        {
            throw new DatasetException($"{archive} is not a readable .tar.gz ({e.Message}): delete it and download it again.", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A duplicate entry, a file where a folder is (or the reverse), a full disk.
            throw new DatasetException($"{archive}: entry '{entry?.Name}' could not be written ({e.Message}); nothing was extracted.", e);
        }
    }

    // Copies in chunks so that a large entry can be cancelled part way.
    static void CopyChecked(Stream? from, Stream to, CancellationToken cancellation)
    {
        if (from is null) return;
        var buffer = new byte[1 << 20];
        int read;
        while ((read = from.Read(buffer)) > 0)
        {
            cancellation.ThrowIfCancellationRequested();
            to.Write(buffer, 0, read);
        }
    }

    static string SafeTarget(string archive, TarEntry entry, string root, bool isFile)
    {
        var name = entry.Name;
        if (name.Contains('\0'))
            throw new DatasetException($"{archive}: entry '{name.Replace("\0", "\\0")}' has a NUL character in its name; the archive is corrupt (nothing was extracted). Delete it and download it again.");
        var parts = name.Split('/', '\\');
        if (name.Length == 0 || Path.IsPathRooted(name) || name.StartsWith('/') || name.StartsWith('\\') || parts.Contains(".."))
            throw new DatasetException($"{archive}: entry '{name}' would be written outside the target folder; the archive is refused (nothing was extracted). Delete it and download it again.");
        var target = Path.GetFullPath(Path.Combine(root, name));
        // Whatever the checks above missed, nothing lands outside the staging folder, and no file
        // takes the place of the staging folder itself (an entry named "." or "./").
        var inside = target.StartsWith(root, StringComparison.Ordinal) && target.Length > root.Length;
        var isRoot = target + Path.DirectorySeparatorChar == root || target == root;
        if (!inside && !(isRoot && !isFile))
            throw new DatasetException($"{archive}: entry '{name}' resolves outside the target folder (or onto it); the archive is refused.");
        return target;
    }
}
