using TinyGrow.Abstractions;

namespace TinyGrow.Datasets.Mnist;

/// <summary>The four IDX files of one dataset, all from the same folder.</summary>
public sealed record MnistFiles(string TrainImages, string TrainLabels, string TestImages, string TestLabels)
{
    /// <summary>Whether the folder is under Dataset:Root or the system copy.</summary>
    public DataFileOrigin Origin { get; init; } = DataFileOrigin.Root;
}

/// <summary>Finds a folder that holds all four IDX files of a dataset.</summary>
public static class MnistFileLocator
{
    /// <summary>The official file names, in the order of <see cref="MnistFiles"/>. Each may also end in ".gz".</summary>
    public static IReadOnlyList<string> FileNames { get; } =
        ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

    /// <summary>Folders searched, in order: &lt;root&gt;/&lt;name&gt;/, &lt;root&gt;/, then the system folder if any.</summary>
    public static IReadOnlyList<string> SearchFolders(MnistVariant variant, string root, string? systemFolder)
    {
        var full = Path.GetFullPath(string.IsNullOrWhiteSpace(root) ? "." : root);
        var folders = new List<string> { Path.Combine(full, variant.Name), full };
        if (!string.IsNullOrEmpty(systemFolder)) folders.Add(systemFolder);
        return folders;
    }

    /// <summary>The first folder holding all four files. The files are never mixed across folders:
    /// MNIST and Fashion-MNIST share file names, so a mix could pair one's images with the other's labels.</summary>
    public static MnistFiles Locate(MnistVariant variant, string root, string? systemFolder)
    {
        // A file given as the root would otherwise be passed over for the system copy, with the reason "does not exist".
        if (!string.IsNullOrWhiteSpace(root) && File.Exists(root))
            throw new DatasetException($"Dataset:Root is '{root}', a file: give the folder that holds {variant.Name}/ (or the four IDX files themselves).");
        var folders = SearchFolders(variant, root, systemFolder);
        var report = new List<string>();
        for (var i = 0; i < folders.Count; i++)
        {
            var folder = folders[i];
            if (!Directory.Exists(folder)) { report.Add($"{folder}/ (does not exist)"); continue; }
            var found = FileNames.Select(n => Find(folder, n)).ToArray();
            if (found.All(f => f is not null))
                // The folders under Root come first; any after them is the system copy.
                return new MnistFiles(found[0]!, found[1]!, found[2]!, found[3]!) { Origin = i < 2 ? DataFileOrigin.Root : DataFileOrigin.System };
            var missing = FileNames.Where((_, i) => found[i] is null);
            report.Add($"{folder}/ (missing {string.Join(", ", missing)})");
        }
        throw new DatasetException(
            $"Dataset '{variant.Name}' not found: no folder holds all four IDX files ({string.Join(", ", FileNames)}; each raw or .gz). " +
            $"Searched: {string.Join("; ", report)}. " +
            $"Fix: put the four files in {folders[0]}/ (Dataset:Root is '{root}')" +
            (variant.InstallHint is null ? "." : $", or run '{variant.InstallHint}' (installs them in {variant.SystemFolder}/)."));
    }

    // The raw file first: it is faster to read than the .gz beside it.
    static string? Find(string folder, string fileName) =>
        new[] { fileName, fileName + ".gz" }.Select(n => Path.Combine(folder, n)).FirstOrDefault(File.Exists);
}
