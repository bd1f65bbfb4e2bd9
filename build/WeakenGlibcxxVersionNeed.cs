// MSBuild inline task (RoslynCodeTaskFactory): see TorchSharpNatives.targets for why.
// Reads ELF64 little-endian section headers, finds .gnu.version_r (SHT_GNU_verneed) and sets
// VER_FLG_WEAK on the Vernaux entry named VersionName, unless the system libstdc++ already
// provides that version. Idempotent: running it twice leaves the same bytes.
using System;
using System.IO;
using System.Linq;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public class WeakenGlibcxxVersionNeed : Task
{
    [Required] public ITaskItem[] Libraries { get; set; }
    [Required] public string VersionName { get; set; }

    const uint ShtGnuVerneed = 0x6ffffffe;
    const ushort VerFlgWeak = 0x2;

    static readonly string[] LibstdcxxCandidates =
    {
        "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6",
        "/usr/lib64/libstdc++.so.6", "/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
        "/usr/lib/aarch64-linux-gnu/libstdc++.so.6",
    };

    public override bool Execute()
    {
        var system = LibstdcxxCandidates.FirstOrDefault(File.Exists);
        if (system == null)
        {
            Log.LogMessage(MessageImportance.Normal, "No system libstdc++ found; TorchSharp natives left as shipped.");
            return true;
        }
        if (Contains(File.ReadAllBytes(system), Encoding.ASCII.GetBytes(VersionName + "\0")))
        {
            Log.LogMessage(MessageImportance.Normal, system + " provides " + VersionName + "; no patch needed.");
            return true;
        }
        foreach (var item in Libraries)
        {
            try
            {
                var bytes = File.ReadAllBytes(item.ItemSpec);
                var state = Weaken(bytes, VersionName);
                if (state == "patched")
                {
                    var tmp = item.ItemSpec + ".tmp";
                    File.WriteAllBytes(tmp, bytes);
                    File.Replace(tmp, item.ItemSpec, null);
                }
                Log.LogMessage(MessageImportance.High, "libstdc++ compatibility (" + VersionName + " marked weak): " + state + ": " + item.ItemSpec);
            }
            catch (Exception e)
            {
                Log.LogError("Could not patch " + item.ItemSpec + " for the system libstdc++ (" + e.Message + "). TorchSharp will not load on this system.");
            }
        }
        return !Log.HasLoggedErrors;
    }

    static bool Contains(byte[] hay, byte[] needle)
    {
        for (int i = 0; i + needle.Length <= hay.Length; i++)
        {
            int j = 0;
            while (j < needle.Length && hay[i + j] == needle[j]) j++;
            if (j == needle.Length) return true;
        }
        return false;
    }

    // Returns "patched", "already weak" or throws when the file is not what we expect.
    static string Weaken(byte[] elf, string versionName)
    {
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
            throw new InvalidDataException("not an ELF file");
        if (elf[4] != 2 || elf[5] != 1) throw new InvalidDataException("not a little-endian ELF64 file");
        long shoff = BitConverter.ToInt64(elf, 0x28);
        int shentsize = BitConverter.ToUInt16(elf, 0x3A);
        int shnum = BitConverter.ToUInt16(elf, 0x3C);
        for (int s = 0; s < shnum; s++)
        {
            long sh = shoff + (long)s * shentsize;
            if (BitConverter.ToUInt32(elf, (int)sh + 4) != ShtGnuVerneed) continue;
            long offset = BitConverter.ToInt64(elf, (int)sh + 0x18);
            int link = (int)BitConverter.ToUInt32(elf, (int)sh + 0x28);
            int count = (int)BitConverter.ToUInt32(elf, (int)sh + 0x2C);
            long strtab = BitConverter.ToInt64(elf, (int)(shoff + (long)link * shentsize) + 0x18);
            long vn = offset;
            for (int n = 0; n < count; n++)
            {
                int cnt = BitConverter.ToUInt16(elf, (int)vn + 2);
                long aux = vn + BitConverter.ToUInt32(elf, (int)vn + 8);
                for (int a = 0; a < cnt; a++)
                {
                    long name = strtab + BitConverter.ToUInt32(elf, (int)aux + 8);
                    int end = Array.IndexOf(elf, (byte)0, (int)name);
                    if (Encoding.ASCII.GetString(elf, (int)name, end - (int)name) == versionName)
                    {
                        ushort flags = BitConverter.ToUInt16(elf, (int)aux + 4);
                        if ((flags & VerFlgWeak) != 0) return "already weak";
                        flags |= VerFlgWeak;
                        elf[aux + 4] = (byte)(flags & 0xff);
                        elf[aux + 5] = (byte)(flags >> 8);
                        return "patched";
                    }
                    aux += BitConverter.ToUInt32(elf, (int)aux + 12);
                }
                vn += BitConverter.ToUInt32(elf, (int)vn + 12);
            }
        }
        return "no " + versionName + " need";
    }
}
