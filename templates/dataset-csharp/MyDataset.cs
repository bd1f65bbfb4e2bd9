using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using TinyGrow.Abstractions;
using TorchSharp;

namespace MyDataset;

/// <summary>The plugin's entry point: the host creates it and calls Register once.</summary>
public sealed class Plugin : IPluginModule
{
    // A constant, compiled in: the host refuses a plugin built for another contract by name.
    public int ContractVersion => Contract.Version;

    public void Register(IServiceCollection services) =>
        services.AddSingleton<IDatasetProvider, CsvDatasetProvider>();
}

/// <summary>
/// Serves "my-dataset" from two CSV files, &lt;Dataset:Root&gt;/my-dataset/train.csv and test.csv.
/// One sample per line: the class label (an integer from 0), then the feature values, separated by
/// commas, numbers written with a dot ("0.5", "-3", "1e-3"). A first line starting with "label" is a
/// header and skipped; empty lines are skipped. Every line of both files has the same number of
/// values. The classes are 0 … the largest training label. Features are standardised with the
/// training split's per-feature mean and standard deviation (a constant feature is only centred) and
/// stored as ready float32 network inputs of shape [features].
/// </summary>
/// <param name="logger">From the host: the run's log (console, and the run's log file).</param>
public sealed class CsvDatasetProvider(ILogger<CsvDatasetProvider> logger) : IDatasetProvider
{
    /// <summary>The name selected with Dataset:Name, and the folder under Dataset:Root.</summary>
    public const string DatasetName = "my-dataset";

    public IReadOnlyList<string> Names => [DatasetName];

    public LoadedDataset Load(string name, DatasetOptions options, torch.Device device, CancellationToken cancellation)
    {
        if (!string.Equals(name, DatasetName, StringComparison.OrdinalIgnoreCase))
            throw new DatasetException($"Dataset '{name}' is not served by this plugin (it serves {DatasetName}): check Dataset:Name.");
        var folder = Path.GetFullPath(Path.Combine(options.Root, DatasetName));
        var trainPath = Path.Combine(folder, "train.csv");
        var testPath = Path.Combine(folder, "test.csv");

        // Everything is read and checked before a tensor exists: a bad file leaves nothing behind.
        var train = CsvSplit.Read(trainPath, "train", features: null, cancellation);
        var test = CsvSplit.Read(testPath, "test", train.Features, cancellation);
        var classes = train.Labels.Max() + 1;
        if (classes < 2)
            throw new DatasetException($"{trainPath}: every label is 0, so there is one class; a classifier needs samples of at least two classes (labels 0 and 1).");
        for (var i = 0; i < test.Count; i++)
            if (test.Labels[i] >= classes)
                throw new DatasetException($"{testPath} line {test.Lines[i]}: label {test.Labels[i]}, but the largest label in {trainPath} is {classes - 1}: " +
                                           "a class the training split never shows cannot be learned. Add training samples of it, or remove the line.");

        var (mean, std) = train.Moments();
        logger.LogInformation("{Dataset}: {Train} training and {Test} test samples of {Features} features, {Classes} classes, read from {Folder}",
            DatasetName, train.Count, test.Count, train.Features, classes, folder);
        var trainSplit = train.ToSplit(mean, std, device);
        try
        {
            var testSplit = test.ToSplit(mean, std, device);
            return new LoadedDataset(DatasetName, trainSplit, testSplit, [train.Features], classes, StoredInputs.Instance)
            {
                Sources = [DataFile.Of("train", trainPath, DataFileOrigin.Root), DataFile.Of("test", testPath, DataFileOrigin.Root)],
            };
        }
        catch
        {
            trainSplit.Dispose();
            throw;
        }
    }
}

/// <summary>One split as read from its CSV file: labels, values row by row, and the line each sample came from.</summary>
sealed class CsvSplit(int[] labels, double[] values, int[] lines, int features)
{
    public int[] Labels => labels;
    public int[] Lines => lines;
    public int Features => features;
    public int Count => labels.Length;

    /// <summary>Reads <paramref name="path"/>; <paramref name="features"/> is the count every line must
    /// have (null: the first sample's). Throws <see cref="DatasetException"/> naming the file, the line
    /// and the fix.</summary>
    public static CsvSplit Read(string path, string split, int? features, CancellationToken cancellation)
    {
        if (!File.Exists(path))
            throw new DatasetException($"{path} does not exist: put the {split} split there (a CSV file, one sample per line: label,value,value,…), " +
                                       $"or set Dataset:Root to the folder that holds {CsvDatasetProvider.DatasetName}/.");
        var labels = new List<int>();
        var values = new List<double>();
        var lines = new List<int>();
        var lineNumber = 0;
        var firstSampleLine = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            if (lineNumber % 4096 == 0) cancellation.ThrowIfCancellationRequested();
            if (string.IsNullOrWhiteSpace(line)) continue;
            var fields = line.Split(',');
            if (labels.Count == 0 && fields[0].Trim().StartsWith("label", StringComparison.OrdinalIgnoreCase)) continue; // the header
            var where = $"{path} line {lineNumber}";
            if (!int.TryParse(fields[0].Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var label) || label < 0)
                throw new DatasetException($"{where}: the label '{fields[0].Trim()}' is not a class index (an integer from 0); the first value of each line is its label.");
            var count = fields.Length - 1;
            if (count == 0)
                throw new DatasetException($"{where}: a label and no values; write label,value,value,… (comma-separated).");
            if (features is null)
            {
                features = count;
                firstSampleLine = lineNumber;
            }
            else if (count != features)
                throw new DatasetException($"{where}: {count} values after the label, but " +
                                           (firstSampleLine > 0 ? $"line {firstSampleLine} has {features}" : $"the training split has {features}") +
                                           ": every sample needs the same number of values.");
            for (var j = 1; j < fields.Length; j++)
            {
                if (!double.TryParse(fields[j].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || !double.IsFinite(v))
                    throw new DatasetException($"{where}, value {j}: '{fields[j].Trim()}' is not a finite number (write numbers with a dot, e.g. 0.5 or 1e-3, and nothing else between the commas).");
                values.Add(v);
            }
            labels.Add(label);
            lines.Add(lineNumber);
        }
        if (labels.Count == 0)
            throw new DatasetException($"{path} holds no samples: write one line per sample, label,value,value,…");
        return new CsvSplit(labels.ToArray(), values.ToArray(), lines.ToArray(), features!.Value);
    }

    /// <summary>Each feature's mean and standard deviation over this split (a zero deviation becomes 1).</summary>
    public (double[] Mean, double[] Std) Moments()
    {
        var mean = new double[features];
        var std = new double[features];
        for (var i = 0; i < Count; i++)
            for (var j = 0; j < features; j++)
                mean[j] += values[i * features + j];
        for (var j = 0; j < features; j++) mean[j] /= Count;
        for (var i = 0; i < Count; i++)
            for (var j = 0; j < features; j++)
            {
                var d = values[i * features + j] - mean[j];
                std[j] += d * d;
            }
        for (var j = 0; j < features; j++)
        {
            std[j] = Math.Sqrt(std[j] / Count);
            if (std[j] == 0) std[j] = 1;
        }
        return (mean, std);
    }

    /// <summary>The split as tensors on <paramref name="device"/>: float32 standardised inputs [n, features], int64 labels [n].</summary>
    public DataSplit ToSplit(double[] mean, double[] std, torch.Device device)
    {
        var inputs = new float[values.Length];
        for (var i = 0; i < Count; i++)
            for (var j = 0; j < features; j++)
                inputs[i * features + j] = (float)((values[i * features + j] - mean[j]) / std[j]);
        var samples = torch.tensor(inputs, [Count, features], dtype: torch.float32, device: device);
        try
        {
            return new DataSplit(samples, torch.tensor(labels.Select(l => (long)l).ToArray(), dtype: torch.int64, device: device));
        }
        catch
        {
            samples.Dispose();
            throw;
        }
    }
}
