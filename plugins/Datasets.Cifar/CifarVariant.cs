using TinyGrow.Datasets.Downloads;

namespace TinyGrow.Datasets.Cifar;

/// <summary>One file of the binary version: its name and how many records the official one holds.</summary>
public sealed record CifarFile(string Name, int Records);

/// <summary>What differs between the CIFAR datasets served: the archive and its checksum, the folder
/// it unpacks to, the files of each split, which label byte is the class, and the normalisation.</summary>
/// <param name="Name">Dataset name in configuration.</param>
/// <param name="Folder">&lt;Root&gt;/&lt;Folder&gt;/ receives the download (CIFAR-100's fine and coarse labels share one).</param>
/// <param name="Archive">The published binary archive.</param>
/// <param name="ArchiveFolder">The folder the archive unpacks to.</param>
/// <param name="Train">Training files, in order.</param>
/// <param name="Test">Test files.</param>
/// <param name="LabelBytes">Label bytes before the 3072 pixel bytes of each record.</param>
/// <param name="LabelIndex">Which of them is the class.</param>
/// <param name="Classes">Number of classes.</param>
/// <param name="Mean">Per-channel (R, G, B) mean of x/255 over the training set.</param>
/// <param name="Std">Per-channel standard deviation of x/255 over the training set.</param>
public sealed record CifarVariant(
    string Name, string Folder, RemoteFile Archive, string ArchiveFolder,
    IReadOnlyList<CifarFile> Train, IReadOnlyList<CifarFile> Test,
    int LabelBytes, int LabelIndex, int Classes, float[] Mean, float[] Std)
{
    /// <summary>Image side in pixels.</summary>
    public const int Side = 32;

    /// <summary>Pixel bytes per record: 1024 red, then 1024 green, then 1024 blue, each row-major.
    /// That is already the [C, H, W] layout, so a record's pixels are copied as they are.</summary>
    public const int PixelBytes = 3 * Side * Side;

    /// <summary>Bytes per record.</summary>
    public int RecordBytes => LabelBytes + PixelBytes;

    /// <summary>Where the archives are published (https://www.cs.toronto.edu/~kriz/cifar.html).</summary>
    public static readonly IReadOnlyList<string> OfficialAddresses = ["https://www.cs.toronto.edu/~kriz/"];

    // Means and standard deviations are over all training pixels of each channel (the true per-channel
    // std: 0.2470, not the widely copied 0.2023, which averages per-image deviations).
    static readonly float[] Cifar10Mean = [0.4914f, 0.4822f, 0.4465f];
    static readonly float[] Cifar10Std = [0.2470f, 0.2435f, 0.2616f];
    static readonly float[] Cifar100Mean = [0.5071f, 0.4865f, 0.4409f];
    static readonly float[] Cifar100Std = [0.2673f, 0.2564f, 0.2762f];

    static readonly RemoteFile Cifar10Archive = new("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530");
    static readonly RemoteFile Cifar100Archive = new("cifar-100-binary.tar.gz", "03b5dce01913d631647c71ecec9e9cb8");

    /// <summary>10 classes; records are &lt;label&gt;&lt;3072 pixels&gt;, 10000 per file.</summary>
    public static readonly CifarVariant Cifar10 = new(
        "cifar10", "cifar10", Cifar10Archive, "cifar-10-batches-bin",
        [.. Enumerable.Range(1, 5).Select(i => new CifarFile($"data_batch_{i}.bin", 10_000))],
        [new("test_batch.bin", 10_000)],
        LabelBytes: 1, LabelIndex: 0, Classes: 10, Cifar10Mean, Cifar10Std);

    /// <summary>100 fine classes; records are &lt;coarse&gt;&lt;fine&gt;&lt;3072 pixels&gt;.</summary>
    public static readonly CifarVariant Cifar100 = new(
        "cifar100", "cifar100", Cifar100Archive, "cifar-100-binary",
        [new("train.bin", 50_000)], [new("test.bin", 10_000)],
        LabelBytes: 2, LabelIndex: 1, Classes: 100, Cifar100Mean, Cifar100Std);

    /// <summary>CIFAR-100 with its 20 coarse classes (superclasses), from the same files.</summary>
    public static readonly CifarVariant Cifar100Coarse = Cifar100 with { Name = "cifar100-coarse", LabelIndex = 0, Classes = 20 };

    /// <summary>All variants.</summary>
    public static IReadOnlyList<CifarVariant> All { get; } = [Cifar10, Cifar100, Cifar100Coarse];
}
