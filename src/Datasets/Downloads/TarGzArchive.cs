using System.Formats.Tar;
using System.IO.Compression;
using TinyGrow.Abstractions;

namespace TinyGrow.Datasets.Downloads;

/// <summary>
/// Extracts a .tar.gz archive safely: an entry whose path is absolute or climbs out with "..", or
/// that is a link or a device, refuses the whole archive (a link could make a later entry write
/// outside the folder). Entries are written into a hidden temporary folder beside the target, and
/// each top-level entry is then moved into place by one rename, so a dataset folder appears whole
/// or not at all.
/// </summary>
public static class TarGzArchive
{
    /// <summary>Extracts <paramref name="archive"/> into <paramref name="folder"/> (created if needed).</summary>
    /// <returns>The top-level names the archive put into <paramref name="folder"/>.</returns>
    /// <exception cref="DatasetException">The archive is corrupt, holds an unsafe entry, or a
    /// top-level entry already exists in <paramref name="folder"/>; nothing was added to the folder.</exception>
    public static IReadOnlyList<string> Extract(string archive, string folder, CancellationToken cancellation = default)
    {
        folder = Path.GetFullPath(folder);
        Directory.CreateDirectory(folder);
        var staging = Path.Combine(folder, $".extracting-{Path.GetFileName(archive)}-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(staging);
            ExtractInto(archive, staging, cancellation);
            var tops = Directory.EnumerateFileSystemEntries(staging).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToList();
            foreach (var top in tops)
                if (Path.Exists(Path.Combine(folder, top)))
                    throw new DatasetException($"{archive}: {Path.Combine(folder, top)} already exists; move it away (or delete it) and run again.");
            foreach (var top in tops)
            {
                var from = Path.Combine(staging, top);
                if (Directory.Exists(from)) Directory.Move(from, Path.Combine(folder, top));
                else File.Move(from, Path.Combine(folder, top));
            }
            return tops;
        }
        finally
        {
            if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        }
    }

    static void ExtractInto(string archive, string staging, CancellationToken cancellation)
    {
        var root = staging + Path.DirectorySeparatorChar;
        try
        {
            using var file = File.OpenRead(archive);
            using var gzip = new GZipStream(file, CompressionMode.Decompress);
            using var reader = new TarReader(gzip);
            while (reader.GetNextEntry() is { } entry)
            {
                cancellation.ThrowIfCancellationRequested();
                var target = SafeTarget(archive, entry, root);
                switch (entry.EntryType)
                {
                    case TarEntryType.Directory:
                        Directory.CreateDirectory(target);
                        break;
                    case TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile:
                        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                        using (var output = new FileStream(target, FileMode.CreateNew, FileAccess.Write))
                            entry.DataStream?.CopyTo(output);
                        break;
                    default:
                        throw new DatasetException($"{archive}: entry '{entry.Name}' is a {entry.EntryType}; only files and folders are extracted (a link could point outside the target folder). The archive is not the published one: delete it and download it again.");
                }
            }
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or FormatException)
        {
            throw new DatasetException($"{archive} is not a readable .tar.gz ({e.Message}): delete it and download it again.", e);
        }
    }

    static string SafeTarget(string archive, TarEntry entry, string root)
    {
        var name = entry.Name;
        var parts = name.Split('/', '\\');
        if (name.Length == 0 || Path.IsPathRooted(name) || name.StartsWith('/') || name.StartsWith('\\') || parts.Contains(".."))
            throw new DatasetException($"{archive}: entry '{name}' would be written outside the target folder; the archive is refused (nothing was extracted). Delete it and download it again.");
        var target = Path.GetFullPath(Path.Combine(root, name));
        // Belt and braces: whatever the checks above missed, nothing lands outside the staging folder.
        if (!target.StartsWith(root, StringComparison.Ordinal) && target + Path.DirectorySeparatorChar != root)
            throw new DatasetException($"{archive}: entry '{name}' resolves outside the target folder; the archive is refused.");
        return target;
    }
}
