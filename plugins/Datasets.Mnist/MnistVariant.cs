namespace TinyGrow.Datasets.Mnist;

/// <summary>What differs between MNIST and Fashion-MNIST: the name, the normalisation constants and
/// where a system package puts the files. The file names and the 28×28×10 layout are shared.</summary>
public sealed record MnistVariant(string Name, float Mean, float Std, string SystemFolder, string? InstallHint)
{
    /// <summary>Image side in pixels.</summary>
    public const int Side = 28;

    /// <summary>Number of classes.</summary>
    public const int Classes = 10;

    // The training-set pixel mean and standard deviation (of x/255) used throughout the literature,
    // so that results compare with published numbers.
    /// <summary>Handwritten digits.</summary>
    public static readonly MnistVariant Mnist =
        new("mnist", 0.1307f, 0.3081f, "/usr/share/datasets/mnist", null);

    /// <summary>Zalando's clothing images; packaged for Debian as dataset-fashion-mnist.</summary>
    public static readonly MnistVariant FashionMnist =
        new("fashion-mnist", 0.2860f, 0.3530f, "/usr/share/datasets/fashion-mnist", "apt-get install dataset-fashion-mnist");

    /// <summary>Both variants.</summary>
    public static IReadOnlyList<MnistVariant> All { get; } = [Mnist, FashionMnist];

    /// <summary>The variant named <paramref name="name"/> (case-insensitive), or null.</summary>
    public static MnistVariant? Find(string name) =>
        All.FirstOrDefault(v => string.Equals(v.Name, name, StringComparison.OrdinalIgnoreCase));
}
