using TinyGrow.Abstractions;
using TinyGrow.Datasets.Downloads;
using TinyGrow.Datasets.Images;
using TorchSharp;

namespace TinyGrow.Datasets.Cifar;

/// <summary>
/// Serves "cifar10", "cifar100" (fine labels) and "cifar100-coarse" from the official binary files.
/// Looks in &lt;Root&gt;/&lt;folder&gt;/&lt;archive folder&gt;/ (e.g. data/cifar10/cifar-10-batches-bin/),
/// then &lt;Root&gt;/&lt;archive folder&gt;/; when neither holds the files, the published archive in
/// &lt;Root&gt;/&lt;folder&gt;/ is verified (downloaded first if absent) and extracted there. Each split
/// becomes one uint8 tensor on the device, moved once; the <see cref="ImagePipeline"/> normalises
/// per channel and augments training batches per sample.
/// </summary>
/// <param name="downloader">The host's shared downloader.</param>
public sealed class CifarDatasetProvider(DatasetDownloader downloader) : IDatasetProvider
{
    /// <summary>Where the archives are fetched from unless Dataset:Mirror says otherwise.</summary>
    public IReadOnlyList<string> Addresses { get; init; } = CifarVariant.OfficialAddresses;

    /// <summary>The datasets served. Tests substitute variants with small record counts and the
    /// checksum of an archive they build, and point <see cref="Addresses"/> at a local server.</summary>
    public IReadOnlyList<CifarVariant> Variants { get; init; } = CifarVariant.All;

    /// <inheritdoc />
    public IReadOnlyList<string> Names => Variants.Select(v => v.Name).ToArray();

    /// <inheritdoc />
    public LoadedDataset Load(string name, DatasetOptions options, torch.Device device, CancellationToken cancellation)
    {
        var variant = Variants.FirstOrDefault(v => string.Equals(v.Name, name, StringComparison.OrdinalIgnoreCase))
            ?? throw new DatasetException($"Dataset '{name}' is not served by the CIFAR plugin (it serves {string.Join(", ", Names)}): check Dataset:Name.");
        var (folder, origin) = LocateOrFetch(variant, options, cancellation);
        DataSplit? train = null, test = null;
        try
        {
            var trainFiles = Files(folder, variant.Train);
            var testFiles = Files(folder, variant.Test);
            var sources = trainFiles.Select(f => DataFile.Of("train", f.Item1, origin))
                .Concat(testFiles.Select(f => DataFile.Of("test", f.Item1, origin))).ToArray();
            train = ToDevice(CifarReader.Read(variant, trainFiles), device);
            test = ToDevice(CifarReader.Read(variant, testFiles), device);
            var pipeline = new ImagePipeline(variant.Mean, variant.Std, ImageAugmentation.From(options), device);
            return new LoadedDataset(variant.Name, train, test, [3, CifarVariant.Side, CifarVariant.Side], variant.Classes, pipeline) { Sources = sources };
        }
        catch
        {
            train?.Dispose();
            test?.Dispose();
            throw;
        }
    }

    /// <summary>Folders searched for the extracted files, in order.</summary>
    public static IReadOnlyList<string> SearchFolders(CifarVariant variant, string root)
    {
        var full = Path.GetFullPath(string.IsNullOrWhiteSpace(root) ? "." : root);
        return [Path.Combine(full, variant.Folder, variant.ArchiveFolder), Path.Combine(full, variant.ArchiveFolder)];
    }

    // The folder holding the extracted files, and Download when this run fetched the archive.
    (string Folder, DataFileOrigin Origin) LocateOrFetch(CifarVariant variant, DatasetOptions options, CancellationToken cancellation)
    {
        var folders = SearchFolders(variant, options.Root);
        var found = folders.FirstOrDefault(f => Missing(variant, f).Count == 0);
        if (found is not null) return (found, DataFileOrigin.Root);

        var wanted = string.Join(", ", variant.Train.Concat(variant.Test).Select(f => f.Name));
        if (Directory.Exists(folders[0]))
            // Refused before any download: extraction would not replace it.
            throw new DatasetException(
                $"{folders[0]}/ is incomplete (missing {string.Join(", ", Missing(variant, folders[0]))}): delete it and run again to extract {variant.Archive.FileName} anew.");

        var downloadFolder = Path.GetDirectoryName(folders[0])!;
        string archive;
        var fetched = !File.Exists(Path.Combine(downloadFolder, variant.Archive.FileName));
        try
        {
            archive = downloader.Fetch(variant.Archive, DatasetDownloader.Addresses(options, Addresses), downloadFolder, options, cancellation);
        }
        catch (DatasetException e)
        {
            throw new DatasetException(
                $"Dataset '{variant.Name}' not found: neither {folders[0]}/ nor {folders[1]}/ holds {wanted}. {e.Message}", e);
        }
        try
        {
            TarGzArchive.Extract(archive, downloadFolder, cancellation);
        }
        catch (DatasetException) when (Missing(variant, folders[0]).Count == 0)
        {
            // Another run extracted the same archive meanwhile: its folder is complete.
        }
        var missing = Missing(variant, folders[0]);
        if (missing.Count > 0)
            throw new DatasetException(
                $"{archive} did not unpack to {folders[0]}/ with {string.Join(", ", missing)}: it is not the {variant.Name} binary archive. Delete it (and what it unpacked) and run again.");
        return (folders[0], fetched ? DataFileOrigin.Download : DataFileOrigin.Root);
    }

    static List<string> Missing(CifarVariant variant, string folder) =>
        variant.Train.Concat(variant.Test).Select(f => f.Name).Where(n => !File.Exists(Path.Combine(folder, n))).ToList();

    static List<(string, CifarFile)> Files(string folder, IReadOnlyList<CifarFile> files) =>
        files.Select(f => (Path.Combine(folder, f.Name), f)).ToList();

    static DataSplit ToDevice(CifarSplit split, torch.Device device) =>
        ImageSplit.OnDevice(split.Pixels, split.Labels, device);
}
