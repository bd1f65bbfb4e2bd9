using TorchSharp;

namespace TinyGrow.Abstractions;

/// <summary>One split of a dataset, whole, on one device.</summary>
/// <param name="Inputs">Float32 inputs, shape [n, ...InputShape], already normalised.</param>
/// <param name="Labels">Int64 class indices, shape [n].</param>
public sealed record DataSplit(torch.Tensor Inputs, torch.Tensor Labels) : IDisposable
{
    /// <summary>Number of samples.</summary>
    public long Count => Labels.shape[0];

    /// <inheritdoc />
    public void Dispose() { Inputs.Dispose(); Labels.Dispose(); }
}

/// <summary>A dataset loaded for training.</summary>
public sealed record LoadedDataset(string Name, DataSplit Train, DataSplit Test, long[] InputShape, int Classes) : IDisposable
{
    /// <inheritdoc />
    public void Dispose() { Train.Dispose(); Test.Dispose(); }
}

/// <summary>Supplies one or more named datasets.</summary>
public interface IDatasetProvider
{
    /// <summary>Dataset names this provider serves, e.g. "fashion-mnist".</summary>
    IReadOnlyList<string> Names { get; }

    /// <summary>Loads <paramref name="name"/> from <paramref name="options"/>.Root (or the provider's
    /// known locations) onto <paramref name="device"/>. Throws <see cref="DatasetException"/> with a
    /// message naming the file and the fix when data is missing or corrupt.</summary>
    LoadedDataset Load(string name, DatasetOptions options, torch.Device device);
}

/// <summary>Missing or corrupt data: the message names the file and what to do.</summary>
public sealed class DatasetException(string message, Exception? inner = null) : Exception(message, inner);
