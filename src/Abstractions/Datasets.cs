using TorchSharp;

namespace TinyGrow.Abstractions;

/// <summary>One split of a dataset, whole, on one device, in its storage form.</summary>
/// <param name="Samples">Samples as stored, shape [n, ...]: e.g. uint8 pixels (a quarter of the
/// float32 bytes). <see cref="LoadedDataset.Pipeline"/> turns a batch of them into network inputs.</param>
/// <param name="Labels">Int64 class indices, shape [n].</param>
public sealed record DataSplit(torch.Tensor Samples, torch.Tensor Labels) : IDisposable
{
    /// <summary>Number of samples.</summary>
    public long Count => Labels.shape[0];

    /// <inheritdoc />
    public void Dispose() { Samples.Dispose(); Labels.Dispose(); }
}

/// <summary>Turns a batch of stored samples into float32 network inputs, on the samples' device.
/// Called once per batch, so that the dataset stays in its compact storage form and random
/// augmentation differs per sample and per epoch.</summary>
public interface IInputPipeline
{
    /// <summary>Inputs for evaluation, statistics and γ search: deterministic (normalised only).</summary>
    /// <param name="samples">A batch of stored samples, shape [b, ...].</param>
    /// <returns>Float32 inputs of shape [b, ...InputShape]; a new tensor (in the caller's dispose scope).</returns>
    torch.Tensor Inputs(torch.Tensor samples);

    /// <summary>Inputs for a training step: the dataset's standard augmentation, drawn per sample
    /// from <paramref name="generator"/> (a CPU generator: the same seed gives the same batches on
    /// every device), then normalised. Equals <see cref="Inputs"/> when augmentation is off.</summary>
    torch.Tensor AugmentedInputs(torch.Tensor samples, torch.Generator generator);
}

/// <summary>The pipeline of a dataset stored as ready float32 inputs: returns them unchanged.</summary>
public sealed class StoredInputs : IInputPipeline
{
    /// <summary>The one instance.</summary>
    public static readonly StoredInputs Instance = new();

    StoredInputs() { }

    /// <inheritdoc />
    public torch.Tensor Inputs(torch.Tensor samples) => samples.alias();

    /// <inheritdoc />
    public torch.Tensor AugmentedInputs(torch.Tensor samples, torch.Generator generator) => samples.alias();

    /// <inheritdoc />
    public override string ToString() => "inputs as stored, no augmentation";
}

/// <summary>Where a file a dataset was read from came from.</summary>
public enum DataFileOrigin
{
    /// <summary>Found under <see cref="DatasetOptions.Root"/>.</summary>
    Root,
    /// <summary>A copy installed on the machine (e.g. /usr/share/datasets/…, from a system package),
    /// used because <see cref="DatasetOptions.Root"/> did not hold the dataset.</summary>
    System,
    /// <summary>Downloaded (and verified) by this run, into <see cref="DatasetOptions.Root"/>.</summary>
    Download,
}

/// <summary>One file a split was read from: what config.json and the run log name.</summary>
/// <param name="Split">"train" or "test".</param>
/// <param name="Path">Absolute path.</param>
/// <param name="Bytes">Size on disk when it was read.</param>
/// <param name="Origin">Where it came from.</param>
public sealed record DataFile(string Split, string Path, long Bytes, DataFileOrigin Origin)
{
    /// <summary>The file at <paramref name="path"/> as it is now (absolute path, size).</summary>
    public static DataFile Of(string split, string path, DataFileOrigin origin) =>
        new(split, System.IO.Path.GetFullPath(path), new FileInfo(path).Length, origin);
}

/// <summary>A dataset loaded for training.</summary>
/// <param name="Name">Dataset name.</param>
/// <param name="Train">Training split.</param>
/// <param name="Test">Test split.</param>
/// <param name="InputShape">Shape of one network input (after <paramref name="Pipeline"/>).</param>
/// <param name="Classes">Number of classes.</param>
/// <param name="Pipeline">Stored samples → network inputs; disposed with the dataset when disposable.</param>
public sealed record LoadedDataset(string Name, DataSplit Train, DataSplit Test, long[] InputShape, int Classes, IInputPipeline Pipeline) : IDisposable
{
    /// <summary>The files the splits were read from, in reading order; empty when the provider does
    /// not report them (a generated dataset has none). Providers set it so that a run records which
    /// copy of the data it trained on.</summary>
    public IReadOnlyList<DataFile> Sources { get; init; } = [];

    /// <summary>The dataset cut to <see cref="DatasetOptions.TrainSamples"/> and <see cref="DatasetOptions.TestSamples"/>
    /// (the first N samples of a split, in the files' order; 0: all), for smoke runs and quick trials. A cut split is a
    /// copy and the original is released, so this dataset's cut splits must not be used after the call; with no limit
    /// that applies, this dataset itself. Providers do not cut: whoever loads (the host's run, the bench) calls this.</summary>
    public LoadedDataset WithLimits(DatasetOptions options)
    {
        var train = Cut(Train, options.TrainSamples);
        var test = Cut(Test, options.TestSamples);
        if (ReferenceEquals(train, Train) && ReferenceEquals(test, Test)) return this;
        if (!ReferenceEquals(train, Train)) Train.Dispose();
        if (!ReferenceEquals(test, Test)) Test.Dispose();
        return this with { Train = train, Test = test };
    }

    static DataSplit Cut(DataSplit split, int limit)
    {
        if (limit <= 0 || limit >= split.Count) return split;
        using var samples = split.Samples.narrow(0, 0, limit);
        using var labels = split.Labels.narrow(0, 0, limit);
        // Copies, so that the full split's memory is released.
        return new DataSplit(samples.clone(), labels.clone());
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Train.Dispose();
        Test.Dispose();
        (Pipeline as IDisposable)?.Dispose();
    }
}

/// <summary>Supplies one or more named datasets.</summary>
public interface IDatasetProvider
{
    /// <summary>Dataset names this provider serves, e.g. "fashion-mnist".</summary>
    IReadOnlyList<string> Names { get; }

    /// <summary>Loads <paramref name="name"/> from <paramref name="options"/>.Root (or the provider's
    /// known locations, or a download when <see cref="DatasetOptions.Download"/> allows it) onto
    /// <paramref name="device"/>. Throws <see cref="DatasetException"/> with a message naming the
    /// file and the fix when data is missing or corrupt, and leaves no partial dataset behind.</summary>
    LoadedDataset Load(string name, DatasetOptions options, torch.Device device, CancellationToken cancellation);
}

/// <summary>Missing or corrupt data: the message names the file and what to do.</summary>
public sealed class DatasetException(string message, Exception? inner = null) : Exception(message, inner);
