using TinyGrow.Abstractions;

namespace TinyGrow.Host.Commands;

/// <summary>Dataset:TrainSamples / Dataset:TestSamples: keep the first N samples of a split (the
/// files' order), for smoke runs and quick trials on large datasets.</summary>
public static class DatasetLimits
{
    /// <summary>The dataset cut to the limits (a new dataset owning copies; the original splits are
    /// released), or <paramref name="data"/> itself when no limit applies.</summary>
    public static LoadedDataset Apply(LoadedDataset data, DatasetOptions options)
    {
        var train = Cut(data.Train, options.TrainSamples);
        var test = Cut(data.Test, options.TestSamples);
        if (ReferenceEquals(train, data.Train) && ReferenceEquals(test, data.Test)) return data;
        if (!ReferenceEquals(train, data.Train)) data.Train.Dispose();
        if (!ReferenceEquals(test, data.Test)) data.Test.Dispose();
        return data with { Train = train, Test = test };
    }

    static DataSplit Cut(DataSplit split, int limit)
    {
        if (limit <= 0 || limit >= split.Count) return split;
        using var samples = split.Samples.narrow(0, 0, limit);
        using var labels = split.Labels.narrow(0, 0, limit);
        // Copies, so that the full split's memory is released.
        return new DataSplit(samples.clone(), labels.clone());
    }
}
