using TinyGrow.Datasets.Downloads;

namespace TinyGrow.Datasets.Mnist;

/// <summary>What differs between MNIST and Fashion-MNIST: the name, the normalisation constants,
/// where a system package puts the files, and where and with which checksums their authors publish
/// them. The file names and the 28×28×10 layout are shared.</summary>
public sealed record MnistVariant(
    string Name, float Mean, float Std, string SystemFolder, string? InstallHint,
    IReadOnlyList<string> Addresses, IReadOnlyList<RemoteFile> Published)
{
    /// <summary>Image side in pixels.</summary>
    public const int Side = 28;

    /// <summary>Number of classes.</summary>
    public const int Classes = 10;

    // Means and deviations: the training-set pixel statistics (of x/255) used throughout the
    // literature, so that results compare with published numbers. MNIST's addresses and MD5s are
    // torchvision's (yann.lecun.com often refuses, so its S3 copy first); Fashion-MNIST's MD5s are
    // from the zalandoresearch/fashion-mnist README. Debian's package recompresses the files, so its
    // .gz differ: files found on disk are read as they are, only downloads are checked.

    /// <summary>Handwritten digits.</summary>
    public static readonly MnistVariant Mnist =
        new("mnist", 0.1307f, 0.3081f, "/usr/share/datasets/mnist", null,
            ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"],
            [new("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
             new("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
             new("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
             new("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c")]);

    /// <summary>Zalando's clothing images; packaged for Debian as dataset-fashion-mnist.</summary>
    public static readonly MnistVariant FashionMnist =
        new("fashion-mnist", 0.2860f, 0.3530f, "/usr/share/datasets/fashion-mnist", "apt-get install dataset-fashion-mnist",
            ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
            [new("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
             new("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
             new("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
             new("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310")]);

    /// <summary>Both variants.</summary>
    public static IReadOnlyList<MnistVariant> All { get; } = [Mnist, FashionMnist];
}
