using System.Runtime.InteropServices;

namespace TinyGrow.Abstractions;

/// <summary>What kind of file a path names, without opening it: opening a FIFO waits for a writer,
/// and a device such as <c>/dev/zero</c> never ends. .NET has no public API for the file type
/// (<see cref="FileAttributes"/> tell only folders and links), so this asks the runtime's own native
/// shim, <c>libSystem.Native</c> (shipped with every .NET runtime on Unix; its <c>SystemNative_Stat</c>
/// is what <see cref="File"/> itself calls), which follows symbolic links as <c>stat(2)</c> does. The host uses it
/// for configuration files and plugins; dataset plugins for their data files.</summary>
public static class FileKind
{
    // struct FileStatus (src/native/libs/System.Native/pal_io.h): int32 Flags, int32 Mode, uint32 Uid,
    // uint32 Gid, int64 Size, …; a buffer larger than the struct leaves room for fields added later.
    [DllImport("libSystem.Native", EntryPoint = "SystemNative_Stat", SetLastError = true)]
    static extern int Stat([MarshalAs(UnmanagedType.LPUTF8Str)] string path, byte[] status);

    const int TypeMask = 0xF000, Fifo = 0x1000, CharacterDevice = 0x2000, Folder = 0x4000, BlockDevice = 0x6000, Regular = 0x8000, Socket = 0xC000;

    /// <summary>(null for a regular file, or what it is instead, e.g. "a FIFO (named pipe)"; its size in bytes).
    /// (null, file length) where the type cannot be asked (Windows, a runtime without the shim).</summary>
    public static (string? Kind, long Size) Of(string path)
    {
        if (OperatingSystem.IsWindows()) return (null, new FileInfo(path).Length);
        var status = new byte[512];
        try
        {
            if (Stat(path, status) != 0) return (null, 0); // the open that follows names the error
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return (null, new FileInfo(path).Length);
        }
        var mode = BitConverter.ToInt32(status, 4);
        var size = BitConverter.ToInt64(status, 16);
        return ((mode & TypeMask) switch
        {
            Regular => null,
            Fifo => "a FIFO (named pipe)",
            CharacterDevice => "a character device",
            BlockDevice => "a block device",
            Socket => "a socket",
            Folder => "a folder",
            _ => "not a regular file",
        }, size);
    }
}
