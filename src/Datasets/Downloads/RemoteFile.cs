using System.Security.Cryptography;

namespace TinyGrow.Datasets.Downloads;

/// <summary>A file a dataset's authors publish, with the checksum they publish for it.</summary>
/// <param name="FileName">The file's name at the address and on disk, e.g. "cifar-10-binary.tar.gz".</param>
/// <param name="Md5">Published MD5, 32 hex digits (MD5 is what the datasets' pages give; it guards
/// against truncation and wrong files, not against an attacker).</param>
public sealed record RemoteFile(string FileName, string Md5)
{
    /// <summary>MD5 of a file, lower-case hex.</summary>
    public static string Md5Of(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(MD5.HashData(stream));
    }

    /// <summary>Whether <paramref name="actual"/> is this file's published checksum.</summary>
    public bool Matches(string actual) => string.Equals(actual, Md5, StringComparison.OrdinalIgnoreCase);
}
