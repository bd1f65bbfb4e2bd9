using TinyGrow.Core;

namespace TinyGrow.Host.Commands;

/// <summary><c>tinygrow export &lt;run-folder&gt;</c>: the PyTorch export (model.pt, tinygrow_model.py)
/// of a folder holding model.json and model.bin, e.g. a run written before the export existed. Every
/// run already writes it; this needs no plugin, device or configuration.</summary>
public static class ExportCommand
{
    /// <summary>Writes the export; returns <see cref="ExitCodes.Ok"/>, or
    /// <see cref="ExitCodes.BadConfiguration"/> when the folder has no model or an unreadable one: model.bin
    /// failing the SHA-256 model.json records, an InputShape or kind the model kinds do not take, shapes that
    /// disagree (one line on <paramref name="error"/>; nothing written).</summary>
    public static int Execute(string runFolder, TextWriter output, TextWriter error)
    {
        foreach (var file in new[] { "model.json", "model.bin" })
        {
            if (!File.Exists(Path.Combine(runFolder, file)))
            {
                error.WriteLine($"tinygrow: export: {Path.Combine(runFolder, file)} does not exist. Give a run folder (runs/<run-id>) that holds model.json and model.bin (a finished run).");
                return ExitCodes.BadConfiguration;
            }
        }
        // What the export writes goes beside the model: a folder in the way, or a folder it may not write in, is named
        // with its fix here (the OS's own message says neither), before anything is read or written.
        foreach (var file in new[] { "model.pt", "tinygrow_model.py" })
        {
            if (Directory.Exists(Path.Combine(runFolder, file)))
            {
                error.WriteLine($"tinygrow: export: {Path.Combine(runFolder, file)} is a folder, where the export writes a file. Move it away and export again.");
                return ExitCodes.BadConfiguration;
            }
        }
        if (NotWritable(runFolder) is { } why)
        {
            error.WriteLine($"tinygrow: export: cannot write in {runFolder} ({why}). Make it writable, or copy the run folder somewhere writable, and export again.");
            return ExitCodes.BadConfiguration;
        }
        try
        {
            if (ModelFile.read(runFolder).ModelBinSha256 is null)
                error.WriteLine($"tinygrow: export: warning: {Path.Combine(runFolder, "model.json")} records no SHA-256 of model.bin (a model written before checksums were), so model.bin is exported without that check.");
            PyTorchExport.writeFromFiles(runFolder);
        }
        catch (UnauthorizedAccessException e)
        {
            // A folder or file the process may not read or write (read-only, owned by another user): not a bug, exit 2.
            error.WriteLine($"tinygrow: export: {e.Message} Make the run folder readable and writable, or copy it somewhere writable, and export again.");
            return ExitCodes.BadConfiguration;
        }
        catch (IOException e) when (e is not (FileNotFoundException or DirectoryNotFoundException))
        {
            // A write that failed (most often a full disk): the export leaves the folder as it was.
            error.WriteLine($"tinygrow: export: {e.Message} Nothing was written. If the disk is full, free space on it (or copy the run folder to a disk with space) and export again.");
            return ExitCodes.BadConfiguration;
        }
        catch (Exception e) when (e is ArgumentException or IOException or InvalidDataException or System.Text.Json.JsonException)
        {
            error.WriteLine($"tinygrow: export: {e.Message}");
            return ExitCodes.BadConfiguration;
        }
        output.WriteLine($"PyTorch export written: {Path.Combine(runFolder, "model.pt")}, {Path.Combine(runFolder, "tinygrow_model.py")} (with model.json: python3 {Path.Combine(runFolder, "tinygrow_model.py")} {runFolder})");
        return ExitCodes.Ok;
    }

    // Null when a file can be created (and is removed) in the folder; otherwise the OS's reason.
    static string? NotWritable(string folder)
    {
        var probe = Path.Combine(folder, $".export-probe-{Guid.NewGuid():N}.tmp");
        try
        {
            using (File.Create(probe)) { }
            File.Delete(probe);
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return e.Message.TrimEnd('.'); }
    }
}
