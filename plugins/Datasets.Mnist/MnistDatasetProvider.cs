using TinyGrow.Abstractions;
using TinyGrow.Datasets.Downloads;
using TinyGrow.Datasets.Images;
using TorchSharp;

namespace TinyGrow.Datasets.Mnist;

/// <summary>Serves "mnist" and "fashion-mnist" from IDX files (see <see cref="MnistFileLocator"/>),
/// downloading the published files into &lt;Root&gt;/&lt;name&gt;/ when no folder holds them.</summary>
/// <param name="downloader">The host's shared downloader.</param>
public sealed class MnistDatasetProvider(DatasetDownloader downloader) : IDatasetProvider
{
    /// <summary>The datasets served, with their system folders and addresses. Tests substitute
    /// variants so that what is installed on the machine does not change their outcome, and so
    /// that downloads come from a local server with the checksums of the files they serve.</summary>
    public IReadOnlyList<MnistVariant> Variants { get; init; } = MnistVariant.All;

    /// <inheritdoc />
    public IReadOnlyList<string> Names => Variants.Select(v => v.Name).ToArray();

    /// <inheritdoc />
    public LoadedDataset Load(string name, DatasetOptions options, torch.Device device, CancellationToken cancellation)
    {
        var variant = Variants.FirstOrDefault(v => string.Equals(v.Name, name, StringComparison.OrdinalIgnoreCase))
            ?? throw new DatasetException($"Dataset '{name}' is not served by the MNIST plugin (it serves {string.Join(", ", Names)}): check Dataset:Name.");
        var downloaded = new HashSet<string>(StringComparer.Ordinal);
        var files = LocateOrDownload(variant, options, downloaded, cancellation);
        var sources = new[] { ("train", files.TrainImages), ("train", files.TrainLabels), ("test", files.TestImages), ("test", files.TestLabels) }
            .Select(f => DataFile.Of(f.Item1, f.Item2, downloaded.Contains(Path.GetFullPath(f.Item2)) ? DataFileOrigin.Download : files.Origin))
            .ToArray();
        var train = LoadSplit(variant, files.TrainImages, files.TrainLabels, device);
        try
        {
            var test = LoadSplit(variant, files.TestImages, files.TestLabels, device);
            // No augmentation: flips and shifts change what a digit or a garment is, and the
            // literature's MNIST numbers are without it.
            var pipeline = new ImagePipeline([variant.Mean], [variant.Std], ImageAugmentation.None, device);
            return new LoadedDataset(variant.Name, train, test, [1, MnistVariant.Side, MnistVariant.Side], MnistVariant.Classes, pipeline) { Sources = sources };
        }
        catch
        {
            train.Dispose();
            throw;
        }
    }

    MnistFiles LocateOrDownload(MnistVariant variant, DatasetOptions options, HashSet<string> downloaded, CancellationToken cancellation)
    {
        var systemFolder = variant.SystemFolder;
        try
        {
            return MnistFileLocator.Locate(variant, options.Root, systemFolder);
        }
        catch (DatasetException missing) when (options.Download)
        {
            var folder = MnistFileLocator.SearchFolders(variant, options.Root, systemFolder)[0];
            var addresses = DatasetDownloader.Addresses(options, variant.Addresses);
            try
            {
                // Only what the download folder lacks (a file is there raw or compressed).
                foreach (var file in variant.Published)
                    if (!File.Exists(Path.Combine(folder, file.FileName)) && !File.Exists(Path.Combine(folder, Path.GetFileNameWithoutExtension(file.FileName))))
                        downloaded.Add(Path.GetFullPath(downloader.Fetch(file, addresses, folder, options, cancellation)));
            }
            catch (DatasetException failed)
            {
                throw new DatasetException($"{missing.Message} Downloading them failed: {failed.Message}", failed);
            }
            return MnistFileLocator.Locate(variant, options.Root, systemFolder);
        }
    }

    /// <summary>Reads one file; a raw file that cannot be read while its .gz sits beside it (the locator reads
    /// the raw one first) is named with that fix, not used in place of it silently.</summary>
    static T Read<T>(string path, Func<string, T> read)
    {
        try
        {
            return read(path);
        }
        catch (DatasetException e) when (!path.EndsWith(".gz", StringComparison.Ordinal) && File.Exists(path + ".gz"))
        {
            throw new DatasetException(
                $"{e.Message} {Path.GetFileName(path)}.gz is beside it, and a raw file is read before its .gz: delete {path} to read the .gz, or decompress the .gz over it.", e);
        }
    }

    static DataSplit LoadSplit(MnistVariant variant, string imagesPath, string labelsPath, torch.Device device)
    {
        var images = Read(imagesPath, IdxReader.ReadImages);
        if (images.Rows != MnistVariant.Side || images.Columns != MnistVariant.Side)
            throw new DatasetException($"{imagesPath}: images are {images.Rows}×{images.Columns}, expected {MnistVariant.Side}×{MnistVariant.Side}: this is not an {variant.Name} file.");
        var labels = Read(labelsPath, path => IdxReader.ReadLabels(path, MnistVariant.Classes));
        if (labels.Length != images.Count)
            throw new DatasetException($"{labelsPath}: {labels.Length} labels for {images.Count} images in {imagesPath}: the files do not belong together (re-download both).");

        // Pixels stay uint8 on the device (a quarter of the float32 bytes); the pipeline
        // normalises each batch.
        return ImageSplit.OnDevice(torch.tensor(images.Pixels, [images.Count, 1, images.Rows, images.Columns], dtype: torch.uint8), labels, device);
    }
}
