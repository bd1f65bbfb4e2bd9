using TinyGrow.Abstractions;
using TorchSharp;

namespace TinyGrow.Datasets.Mnist;

/// <summary>Serves "mnist" and "fashion-mnist" from IDX files (see <see cref="MnistFileLocator"/>).</summary>
public sealed class MnistDatasetProvider : IDatasetProvider
{
    /// <summary>Folder searched last for each dataset name (a system package's location). Tests
    /// replace it so that what is installed on the machine does not change their outcome.</summary>
    public IReadOnlyDictionary<string, string> SystemFolders { get; init; } =
        MnistVariant.All.ToDictionary(v => v.Name, v => v.SystemFolder);

    /// <inheritdoc />
    public IReadOnlyList<string> Names { get; } = MnistVariant.All.Select(v => v.Name).ToArray();

    /// <inheritdoc />
    public LoadedDataset Load(string name, DatasetOptions options, torch.Device device)
    {
        var variant = MnistVariant.Find(name)
            ?? throw new DatasetException($"Dataset '{name}' is not served by the MNIST plugin (it serves {string.Join(", ", Names)}): check Dataset:Name.");
        var files = MnistFileLocator.Locate(variant, options.Root, SystemFolders.GetValueOrDefault(variant.Name));
        var train = LoadSplit(variant, files.TrainImages, files.TrainLabels, device);
        try
        {
            var test = LoadSplit(variant, files.TestImages, files.TestLabels, device);
            return new LoadedDataset(variant.Name, train, test, [1, MnistVariant.Side, MnistVariant.Side], MnistVariant.Classes);
        }
        catch
        {
            train.Dispose();
            throw;
        }
    }

    static DataSplit LoadSplit(MnistVariant variant, string imagesPath, string labelsPath, torch.Device device)
    {
        var images = IdxReader.ReadImages(imagesPath);
        if (images.Rows != MnistVariant.Side || images.Columns != MnistVariant.Side)
            throw new DatasetException($"{imagesPath}: images are {images.Rows}×{images.Columns}, expected {MnistVariant.Side}×{MnistVariant.Side}: this is not an {variant.Name} file.");
        var labels = IdxReader.ReadLabels(labelsPath, MnistVariant.Classes);
        if (labels.Length != images.Count)
            throw new DatasetException($"{labelsPath}: {labels.Length} labels for {images.Count} images in {imagesPath}: the files do not belong together (re-download both).");

        using var scope = torch.NewDisposeScope();
        // uint8 crosses to the device (a quarter of the float32 bytes); the conversion runs there.
        using var pixels = torch.tensor(images.Pixels, [images.Count, 1, images.Rows, images.Columns], dtype: torch.uint8);
        var inputs = pixels.to(device).to(torch.float32).div_(255f).sub_(variant.Mean).div_(variant.Std);
        using var labelBytes = torch.tensor(labels, [labels.Length], dtype: torch.uint8);
        // Cross-entropy wants int64 class indices.
        var targets = labelBytes.to(device).to(torch.int64);
        scope.MoveToOuter(inputs);
        scope.MoveToOuter(targets);
        return new DataSplit(inputs, targets);
    }
}
