using System.Globalization;
using TinyGrow.Abstractions;
using TinyGrow.Core;
using TinyGrow.Host.Configuration;

namespace TinyGrow.Host.Commands;

/// <summary>One part of a run's memory and the key that sets its size.</summary>
/// <param name="What">What it is, for the message.</param>
/// <param name="Key">The configuration key whose value drives it.</param>
/// <param name="Bytes">Bytes it needs at the largest widths.</param>
/// <param name="Parameters">The trainable parameters it holds (a layer's), else 0.</param>
public sealed record MemoryTerm(string What, string Key, double Bytes, double Parameters = 0);

/// <summary>
/// What a run will hold in memory once every layer has grown to its MaxWidth, estimated before the
/// model is built (and before the run folder is claimed), so that a width or a sample count that
/// cannot fit is an error naming its key instead of a native crash in the middle of the run.
/// </summary>
/// <remarks>Counted: float32 parameters (BatchNorm's running statistics, two per channel, are left
/// out: they are small beside the weights) with their gradients and optimizer state (SGD momentum: one
/// copy; Adam: two), for every growth junction its float64 statistics (S D1×D1, S2 D2×D2, P D2×D1,
/// M D1×out, M2 D2×out, and per group again under the significance test) as if every junction were
/// grown in the same step, plus the working copies of the largest solve (three D×D), the float32
/// statistics, held-out and whitening samples, one training batch's activations (three float32
/// copies: output, saved input, gradient), and the dataset's tensors. Not counted: libtorch's own
/// allocator slack and the runtime, which the margin below stands for.</remarks>
public static class MemoryEstimate
{
    /// <summary>Share of the available memory a run may plan to use.</summary>
    public const double Margin = 0.9;

    /// <summary>The terms for <paramref name="settings"/> on a dataset with this input shape and
    /// class count, or null with <paramref name="unknown"/> set when the model has a layer kind the
    /// estimate does not know (a plugin's own kind).</summary>
    public static IReadOnlyList<MemoryTerm>? Terms(TinyGrowSettings settings, LoadedDataset data, out string unknown)
    {
        unknown = "";
        var model = settings.Model;
        var layers = model.Preset != "" ? ResNet(model, data.InputShape, data.Classes) : Chain(model, data.InputShape, data.Classes, out unknown);
        if (layers is null) return null;

        var growth = settings.Growth;
        var terms = new List<MemoryTerm>();
        var states = settings.Training.Optimizer == "adam" ? 2 : 1;
        foreach (var layer in layers)
            terms.Add(new($"{layer.Name}: {layer.Parameters:N0} parameters (float32, gradient, {settings.Training.Optimizer} state)", layer.Key, 4.0 * layer.Parameters * (2 + states), layer.Parameters));
        if (!IsFixed(settings))
        {
            var groups = growth.SignificanceTest == "signflip" ? growth.SignificanceGroups : 0;
            for (var i = 0; i + 1 < layers.Count; i++)
            {
                var (a, b) = (layers[i], layers[i + 1]);
                if (!a.Grows) continue;
                double d1 = b.FanIn, d2 = a.FanIn, output = b.Outputs;
                var matrices = d1 * d1 + d2 * d2 + d2 * d1 + d1 * output + d2 * output + groups * (d2 * output + d2 * d1 + d2 * d2);
                terms.Add(new($"statistics of the junction {a.Name} → {b.Name} (float64, D1 = {d1:N0}, D2 = {d2:N0})", a.Key, 8.0 * matrices));
            }
            var solve = layers.Where(l => l.Grows).Select(l => l.FanIn).DefaultIfEmpty(0).Max();
            var widest = layers.Where(l => l.Grows).MaxBy(l => l.FanIn);
            if (widest is not null) terms.Add(new($"the largest solve's working copies (3 × {solve:N0}² float64)", widest.Key, 3.0 * 8.0 * solve * solve));
            var inputs = data.InputShape.Aggregate(1.0, (n, d) => n * d);
            terms.Add(new($"statistics, held-out and input-whitening samples (float32, {inputs:N0} per sample)", "Growth:StatisticsSamples",
                4.0 * inputs * (3.0 * growth.StatisticsSamples + growth.GammaSearchSamples)));
        }
        var activations = layers.Sum(l => (double)l.Activations);
        terms.Add(new($"one training batch's activations ({activations:N0} per sample, 3 float32 copies)", "Training:BatchSize", 3.0 * 4.0 * activations * settings.Training.BatchSize));
        terms.Add(new("the dataset's tensors (already loaded)", "Dataset:Name", DatasetBytes(data)));
        return terms;
    }

    /// <summary>The bytes the dataset's tensors hold.</summary>
    public static double DatasetBytes(LoadedDataset data) =>
        new[] { data.Train.Samples, data.Train.Labels, data.Test.Samples, data.Test.Labels }.Sum(t => (double)t.NumberOfElements * t.ElementSize);

    /// <summary>Null when <paramref name="terms"/> fit in <paramref name="available"/> bytes (the
    /// dataset, already loaded, is added back to it); else the error, naming the keys that drive the
    /// estimate.</summary>
    public static string? Refusal(IReadOnlyList<MemoryTerm> terms, double available, double loadedDataset, string where)
    {
        var total = terms.Sum(t => t.Bytes);
        var budget = Margin * (available + loadedDataset);
        if (total <= budget) return null;
        // The keys of the largest terms that together make up most of the estimate.
        var drivers = new List<string>();
        double covered = 0;
        foreach (var group in terms.GroupBy(t => t.Key).Select(g => (Key: g.Key, Bytes: g.Sum(t => t.Bytes))).OrderByDescending(g => g.Bytes))
        {
            if (covered >= 0.8 * total) break;
            drivers.Add($"{group.Key} ({Text(group.Bytes)})");
            covered += group.Bytes;
        }
        var largest = terms.MaxBy(t => t.Bytes)!;
        return $"This run would need about {Text(total)} at its largest widths, more than the {Text(budget)} it may use ({Margin:P0} of {Text(available + loadedDataset)}: {where}, with the dataset already loaded). " +
               $"It is driven by {string.Join(", ", drivers)}; the largest part is {largest.What}. Lower those values (a MaxWidth, Growth:StatisticsSamples, Training:BatchSize), or run on a machine with more memory.";
    }

    /// <summary>Bytes as GB or MB.</summary>
    public static string Text(double bytes) =>
        bytes >= 1e9 ? string.Create(CultureInfo.InvariantCulture, $"{bytes / 1e9:F1} GB") : string.Create(CultureInfo.InvariantCulture, $"{bytes / 1e6:F0} MB");

    /// <summary>MemAvailable of /proc/meminfo in bytes, or null where there is none.</summary>
    public static double? AvailableOnCpu()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
                if (line.StartsWith("MemAvailable:", StringComparison.Ordinal))
                    return double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { }
        return null;
    }

    static bool IsFixed(TinyGrowSettings settings) =>
        string.Equals(settings.Growth.Strategy, SettingsValidator.NoGrowth, StringComparison.OrdinalIgnoreCase);

    // A layer at its largest width: its parameters, its fan-in (a junction's D when it is B, the
    // other D when it is A), its output channels, and its outputs per sample (activations).
    sealed record Layer(string Name, string Key, double Parameters, double FanIn, double Outputs, double Activations, bool Grows);

    // The list form: conv layers first (shapes followed through strides, padding and pooling), then
    // dense layers after the head (gap: channels; flatten: channels × positions), then the output layer.
    static List<Layer>? Chain(ModelOptions model, long[] inputShape, int classes, out string unknown)
    {
        unknown = "";
        var layers = new List<Layer>();
        // An MLP reads the whole input flattened; a CNN starts from its channels and positions.
        var flat = inputShape.Length != 3 || model.Layers.Count == 0 || !model.Layers[0].Kind.Equals("conv", StringComparison.OrdinalIgnoreCase);
        double channels = flat ? inputShape.Aggregate(1.0, (n, d) => n * d) : inputShape[0];
        double height = flat ? 1 : inputShape[1], width = flat ? 1 : inputShape[2];
        for (var i = 0; i < model.Layers.Count; i++)
        {
            var spec = model.Layers[i];
            var key = $"Model:Layers:{i}:MaxWidth";
            double m = spec.MaxWidth;
            switch (spec.Kind.ToLowerInvariant())
            {
                case "conv" when !flat:
                    var fanIn = channels * spec.Kernel * spec.Kernel + (spec.Bias && !spec.BatchNorm ? 1 : 0);
                    height = Math.Max(1, Math.Floor((height + 2.0 * spec.ResolvedPadding - spec.Dilation * (spec.Kernel - 1) - 1) / spec.Stride) + 1);
                    width = Math.Max(1, Math.Floor((width + 2.0 * spec.ResolvedPadding - spec.Dilation * (spec.Kernel - 1) - 1) / spec.Stride) + 1);
                    layers.Add(new($"layer {i} (conv)", key, m * fanIn + (spec.BatchNorm ? 2 * m : 0), fanIn, m, m * height * width, true));
                    if (spec.Pool is "max2" or "avg2") { height = Math.Max(1, Math.Floor(height / 2)); width = Math.Max(1, Math.Floor(width / 2)); }
                    channels = m;
                    break;
                case "dense":
                    if (!flat)
                    {
                        channels = model.Head == "flatten" ? channels * height * width : channels;
                        flat = true;
                    }
                    var denseFanIn = channels + (spec.Bias ? 1 : 0);
                    layers.Add(new($"layer {i} (dense)", key, m * denseFanIn, denseFanIn, m, m, true));
                    channels = m;
                    break;
                default:
                    unknown = spec.Kind;
                    return null;
            }
        }
        var inputs = (flat || model.Head != "flatten" ? channels : channels * height * width) + (model.OutputBias ? 1 : 0);
        layers.Add(new("the output layer", layers.Count > 0 ? layers[^1].Key : "Dataset:Name", classes * inputs, inputs, classes, classes, false));
        return layers;
    }

    // A ResNet preset (CIFAR form) at its full widths on [channels, height, width] inputs: the growing
    // convolutions are each BasicBlock's first; its second conv is their junction's B.
    static List<Layer> ResNet(ModelOptions model, long[] inputShape, int classes)
    {
        const string key = "Model:Preset";
        var shape = ModelPlan.resnetPresets.First(p => p.Item1 == model.Preset).Item2;
        double inputChannels = inputShape[0], side = inputShape.Length > 1 ? inputShape[1] : 1, other = inputShape.Length > 2 ? inputShape[2] : 1;
        double stem = shape.Stem;
        var layers = new List<Layer> { new("stem", key, inputChannels * 9 * stem + 2 * stem, inputChannels * 9, stem, stem * side * other, false) };
        double channels = stem;
        for (var stage = 0; stage < shape.Widths.Length; stage++)
            for (var k = 0; k < shape.BlocksPerStage; k++)
            {
                double full = shape.Widths[stage];
                if (stage > 0 && k == 0) { side = Math.Ceiling(side / 2); other = Math.Ceiling(other / 2); }
                var shortcut = channels != full ? channels * full + 2 * full : 0;
                layers.Add(new($"stage {stage + 1} block {k + 1} conv1", key, channels * 9 * full + 2 * full, channels * 9, full, full * side * other, true));
                layers.Add(new($"stage {stage + 1} block {k + 1} conv2", key, full * 9 * full + 2 * full + shortcut, full * 9, full, 3 * full * side * other, false));
                channels = full;
            }
        layers.Add(new("the output layer", key, classes * (channels + 1), channels + 1, classes, classes, false));
        return layers;
    }
}
