using TinyGrow.Abstractions;

namespace TinyGrow.Datasets.Cifar;

/// <summary>One split read from disk: pixels [n, 3, 32, 32] as bytes, and one class byte per image.</summary>
public sealed record CifarSplit(byte[] Pixels, byte[] Labels)
{
    /// <summary>Number of images.</summary>
    public int Count => Labels.Length;
}

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
        if (total * CifarVariant.PixelBytes > Array.MaxLength)
            throw new DatasetException($"{files[0].Path}: {total} records are more than one array holds; this is not a {variant.Name} split.");
        var pixels = new byte[total * CifarVariant.PixelBytes];
        var labels = new byte[total];
        var image = 0;
        for (var f = 0; f < files.Count; f++)
        {
            var path = files[f].Path;
            var bytes = File.ReadAllBytes(path);
            if (bytes.Length != (long)counts[f] * variant.RecordBytes)
                throw new DatasetException($"{path} changed while it was read; run again.");
            for (var r = 0; r < counts[f]; r++, image++)
            {
                var record = r * variant.RecordBytes;
                var label = bytes[record + variant.LabelIndex];
                if (label >= variant.Classes)
                    throw new DatasetException(
                        $"{path}: record {r} has label {label}, but {variant.Name} has {variant.Classes} classes (0–{variant.Classes - 1}): " +
                        $"the file is corrupt or from another dataset. {Fix(path)}");
                labels[image] = label;
                Buffer.BlockCopy(bytes, record + variant.LabelBytes, pixels, image * CifarVariant.PixelBytes, CifarVariant.PixelBytes);
            }
        }
        return new CifarSplit(pixels, labels);
    }

    static int CountRecords(CifarVariant variant, string path, CifarFile file)
    {
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
