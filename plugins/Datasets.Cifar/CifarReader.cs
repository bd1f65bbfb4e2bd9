using TinyGrow.Abstractions;
using TorchSharp;

namespace TinyGrow.Datasets.Cifar;

/// <summary>One split read from disk: a CPU uint8 tensor [n, 3, 32, 32], and one class byte per image.</summary>
public sealed record CifarSplit(torch.Tensor Pixels, byte[] Labels);

/// <summary>Reads the binary version of CIFAR: fixed-size records of label byte(s) then 3072 pixel
/// bytes, no header. Every file is checked whole before anything is kept: a size that is not a
/// whole number of records, a record count other than the official one (a file cut at a record
/// boundary), or a label out of range
/// is an error naming the file.</summary>
public static class CifarReader
{
    /// <summary>Reads <paramref name="files"/> (in order) into one split.</summary>
    /// <param name="variant">Record layout and class count.</param>
    /// <param name="files">Each file's path and the record count its official version holds.</param>
    public static CifarSplit Read(CifarVariant variant, IReadOnlyList<(string Path, CifarFile File)> files)
    {
        var counts = files.Select(f => CountRecords(variant, f.Path, f.File)).ToArray();
        var total = counts.Sum(c => (long)c);
        // Records are read straight into the tensor's own memory: no managed copy of the split
        // (which would double the memory held while loading) and no whole-file buffers.
        var pixels = torch.empty([total, 3, CifarVariant.Side, CifarVariant.Side], dtype: torch.uint8);
        try
        {
            var labels = new byte[total];
            ReadInto(variant, files, counts, pixels.bytes, labels);
            return new CifarSplit(pixels, labels);
        }
        catch
        {
            pixels.Dispose();
            throw;
        }
    }

    static void ReadInto(CifarVariant variant, IReadOnlyList<(string Path, CifarFile File)> files, int[] counts, Span<byte> pixels, byte[] labels)
    {
        Span<byte> labelBytes = stackalloc byte[variant.LabelBytes];
        var image = 0;
        for (var f = 0; f < files.Count; f++)
        {
            var path = files[f].Path;
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
            if (stream.Length != (long)counts[f] * variant.RecordBytes)
                throw new DatasetException($"{path} changed while it was read; run again.");
            for (var r = 0; r < counts[f]; r++, image++)
            {
                stream.ReadExactly(labelBytes);
                var label = labelBytes[variant.LabelIndex];
                if (label >= variant.Classes)
                    throw new DatasetException(
                        $"{path}: record {r} has label {label}, but {variant.Name} has {variant.Classes} classes (0–{variant.Classes - 1}): " +
                        $"the file is corrupt or from another dataset. {Fix(path)}");
                labels[image] = label;
                stream.ReadExactly(pixels.Slice(image * CifarVariant.PixelBytes, CifarVariant.PixelBytes));
            }
        }
    }

    static int CountRecords(CifarVariant variant, string path, CifarFile file)
    {
        // Asked without opening it: a FIFO would make the open wait for a writer, a device never end.
        if (FileKind.Of(path).Kind is { } kind)
            throw new DatasetException($"{path} is {kind}, not a regular file. {Fix(path)}");
        var length = new FileInfo(path).Length;
        if (length == 0 || length % variant.RecordBytes != 0)
            throw new DatasetException(
                $"{path}: {length} bytes is not a whole number of {variant.RecordBytes}-byte records " +
                $"({variant.LabelBytes} label byte{(variant.LabelBytes > 1 ? "s" : "")} + {CifarVariant.PixelBytes} pixel bytes each in {variant.Name}): " +
                $"the file is truncated or not a {variant.Name} file. {Fix(path)}");
        var records = length / variant.RecordBytes;
        if (records != file.Records)
            throw new DatasetException(
                $"{path}: {records} records, the official {file.Name} holds {file.Records}: the file is truncated or another version. {Fix(path)}");
        return (int)records;
    }

    static string Fix(string path) =>
        $"Delete {Path.GetDirectoryName(path)}/ and run again to extract (or download) a fresh copy.";
}
