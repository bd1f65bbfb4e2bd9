using System.Text;
using ScottPlot;

namespace TinyGrow.Host.Reports;

/// <summary>
/// The report of a run folder, drawn from its metrics.jsonl: four PNG figures (ScottPlot, headless)
/// and report.md showing them with the final numbers. Every file is written to a temporary name
/// and renamed, so a report is never seen half-written (an older one is replaced whole).
/// </summary>
public static class RunReport
{
    /// <summary>Size of every figure, in pixels.</summary>
    public const int Width = 900, Height = 500;

    /// <summary>The figures, in the order report.md shows them.</summary>
    public static readonly IReadOnlyList<string> Figures =
        ["loss-accuracy.png", "widths.png", "bottleneck.png", "accuracy-parameters.png"];

    /// <summary>The report file.</summary>
    public const string Markdown = "report.md";

    /// <summary>Writes the figures and report.md into <paramref name="runFolder"/>, all or none of them
    /// (a report of figures from two versions of metrics.jsonl would mislead); returns the warnings of
    /// reading its metrics.jsonl.</summary>
    /// <exception cref="ReportException">metrics.jsonl is missing or corrupt (nothing is written).</exception>
    /// <exception cref="IOException">A file cannot be written (nothing is replaced).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="stop"/> was signalled (nothing is replaced).</exception>
    public static IReadOnlyList<string> Write(string runFolder, CancellationToken stop = default)
    {
        var metrics = RunMetrics.Read(Path.Combine(runFolder, "metrics.jsonl"));
        stop.ThrowIfCancellationRequested();
        var growthTimes = metrics.GrowthTimes();
        WriteAllOrNone(stop,
        [
            (Path.Combine(runFolder, Figures[0]), path => LossAccuracy(metrics, growthTimes).SavePng(path, Width, Height)),
            (Path.Combine(runFolder, Figures[1]), path => Widths(metrics, growthTimes).SavePng(path, Width, Height)),
            (Path.Combine(runFolder, Figures[2]), path => Bottleneck(metrics, growthTimes).SavePng(path, Width, Height)),
            (Path.Combine(runFolder, Figures[3]), path => AccuracyParameters(metrics).SavePng(path, Width, Height)),
            (Path.Combine(runFolder, Markdown), path => File.WriteAllText(path, Text(runFolder, metrics))),
        ]);
        return metrics.Warnings;
    }

    /// <summary>Writes each file to a temporary file beside it, and only once all are written renames them
    /// over their names: a file that cannot be written (a folder in its place, a full disk), or a stop between
    /// two files, leaves every file of the folder as it was. Temporaries a killed process left (its pid no longer
    /// running) are removed first.</summary>
    static void WriteAllOrNone(CancellationToken stop, IReadOnlyList<(string Path, Action<string> Write)> files)
    {
        var temporaries = files.Select(f => $"{f.Path}.{Environment.ProcessId}.tmp").ToArray();
        foreach (var (path, _) in files) RemoveLeftTemporaries(path);
        try
        {
            foreach (var (path, _) in files)
                if (Directory.Exists(path))
                    throw new IOException($"{path} is a folder, where the report writes a file. Move it away");
            for (var i = 0; i < files.Count; i++)
            {
                stop.ThrowIfCancellationRequested();
                files[i].Write(temporaries[i]);
            }
            stop.ThrowIfCancellationRequested();
            for (var i = 0; i < files.Count; i++)
                File.Move(temporaries[i], files[i].Path, overwrite: true);
        }
        finally
        {
            foreach (var temporary in temporaries)
                if (File.Exists(temporary)) File.Delete(temporary);
        }
    }

    // `<path>.<pid>.tmp` files of processes no longer running (a report or run killed mid-write).
    static void RemoveLeftTemporaries(string path)
    {
        var folder = Path.GetDirectoryName(path);
        if (folder is null || !Directory.Exists(folder)) return;
        var prefix = Path.GetFileName(path) + ".";
        foreach (var file in Directory.EnumerateFiles(folder, prefix + "*.tmp"))
        {
            var middle = Path.GetFileName(file)[prefix.Length..^".tmp".Length];
            if (int.TryParse(middle, out var pid) && pid != Environment.ProcessId && !Running(pid))
                try { File.Delete(file); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    static bool Running(int pid)
    {
        try { using var process = System.Diagnostics.Process.GetProcessById(pid); return !process.HasExited; }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }

    /// <summary>One picture of a grown run: the width of every growable layer over training (left axis) and
    /// the test accuracy after each epoch (right axis), drawn from <paramref name="runFolder"/>'s metrics.jsonl
    /// into <paramref name="path"/> (<see cref="Width"/>×<see cref="Height"/>). The README shows the default
    /// experiment's (<c>make readme-figure</c>); a run's own report draws the two separately.</summary>
    /// <exception cref="ReportException">metrics.jsonl is missing or corrupt (nothing is written).</exception>
    public static void WriteWidthsAndAccuracy(string runFolder, string path)
    {
        var metrics = RunMetrics.Read(Path.Combine(runFolder, "metrics.jsonl"));
        var plot = Widths(metrics, metrics.GrowthTimes());
        plot.Title("Widths and test accuracy of a grown run");
        var accuracy = plot.Add.Scatter(metrics.Epochs.Select(e => (double)e.Epoch).ToArray(),
            Finite(metrics.Epochs.Select(e => 100 * e.TestAccuracy)));
        accuracy.LegendText = "test accuracy (%)";
        accuracy.Axes.YAxis = plot.Axes.Right;
        plot.Axes.Right.Label.Text = "test accuracy (%)";
        WriteAllOrNone(CancellationToken.None, [(path, temporary => plot.SavePng(temporary, Width, Height))]);
    }

    static Plot NewPlot(string title, string xLabel, string yLabel)
    {
        var plot = new Plot();
        plot.Title(title);
        plot.XLabel(xLabel);
        plot.YLabel(yLabel);
        return plot;
    }

    static double[] Finite(IEnumerable<double> values) => values.ToArray();

    // Growth steps as dashed vertical lines, one legend entry for all.
    static void MarkGrowth(Plot plot, RunMetrics metrics, double[] times)
    {
        var first = true;
        foreach (var t in times.Where((_, i) => metrics.Growths[i].Added > 0).Distinct())
        {
            var line = plot.Add.VerticalLine(t, 1, Colors.Gray.WithAlpha(0.6), LinePattern.Dashed);
            if (first) line.LegendText = "growth step";
            first = false;
        }
    }

    static Plot LossAccuracy(RunMetrics metrics, double[] growthTimes)
    {
        var plot = NewPlot("Loss and test accuracy per epoch", "epoch", "loss");
        var x = metrics.Epochs.Select(e => (double)e.Epoch).ToArray();
        MarkGrowth(plot, metrics, growthTimes);
        var train = plot.Add.Scatter(x, Finite(metrics.Epochs.Select(e => e.TrainLoss)));
        train.LegendText = "train loss";
        var test = plot.Add.Scatter(x, Finite(metrics.Epochs.Select(e => e.TestLoss)));
        test.LegendText = "test loss";
        var accuracy = plot.Add.Scatter(x, Finite(metrics.Epochs.Select(e => 100 * e.TestAccuracy)));
        accuracy.LegendText = "test accuracy (%)";
        accuracy.Axes.YAxis = plot.Axes.Right;
        plot.Axes.Right.Label.Text = "test accuracy (%)";
        plot.ShowLegend(Alignment.MiddleRight);
        return plot;
    }

    // Width of every growable layer over time: a step at each growth, the epoch lines in between.
    static Plot Widths(RunMetrics metrics, double[] growthTimes)
    {
        var plot = NewPlot("Width of each growable layer", "epoch", "width (neurons / channels)");
        var layers = metrics.Junctions;
        var points = Enumerable.Range(0, layers).Select(_ => new List<(double X, double Y)>()).ToArray();
        var current = new int?[layers];
        // Merge epoch and growth lines in time order: the end of epoch e (x = e) comes before the first
        // growth step of epoch e + 1 (also at x = e).
        var timeline = metrics.Epochs.Select(e => (X: (double)e.Epoch, Order: 0, Epoch: (EpochLine?)e, Growth: (GrowthLine?)null))
            .Concat(metrics.Growths.Select((g, i) => (X: growthTimes[i], Order: 1, Epoch: (EpochLine?)null, Growth: (GrowthLine?)g)))
            .OrderBy(p => p.X).ThenBy(p => p.Order);
        foreach (var (x, _, epoch, growth) in timeline)
        {
            if (growth is { } g)
            {
                current[g.Junction] ??= g.Width - g.Added;
                if (points[g.Junction].Count == 0) points[g.Junction].Add((0, current[g.Junction]!.Value));
                points[g.Junction].Add((x, current[g.Junction]!.Value));
                points[g.Junction].Add((x, g.Width));
                current[g.Junction] = g.Width;
            }
            else if (epoch is { } e)
                for (var j = 0; j < e.Widths.Length; j++)
                {
                    // Before any growth of j, its width was the same since the start.
                    if (points[j].Count == 0) points[j].Add((0, e.Widths[j]));
                    points[j].Add((x, e.Widths[j]));
                    current[j] = e.Widths[j];
                }
        }
        for (var j = 0; j < layers; j++)
        {
            if (points[j].Count == 0) continue;
            var line = plot.Add.Scatter(points[j].Select(p => p.X).ToArray(), points[j].Select(p => p.Y).ToArray());
            line.MarkerSize = 0;
            line.LegendText = $"layer {j} (junction {j})";
        }
        plot.ShowLegend(Alignment.LowerRight);
        return plot;
    }

    static Plot Bottleneck(RunMetrics metrics, double[] growthTimes)
    {
        var plot = NewPlot("Expressivity bottleneck per junction (before each growth step)", "epoch", "bottleneck  tr(E) − Δ");
        foreach (var junction in metrics.Growths.Select(g => g.Junction).Distinct().Order())
        {
            var indices = Enumerable.Range(0, metrics.Growths.Count).Where(i => metrics.Growths[i].Junction == junction).ToArray();
            var line = plot.Add.Scatter(indices.Select(i => growthTimes[i]).ToArray(), indices.Select(i => metrics.Growths[i].Bottleneck).ToArray());
            line.LegendText = $"junction {junction}";
        }
        if (metrics.Growths.Count == 0)
            plot.Add.Annotation("no growth steps (a fixed network, or growth never ran)");
        else
            plot.ShowLegend(Alignment.UpperRight);
        return plot;
    }

    static Plot AccuracyParameters(RunMetrics metrics)
    {
        var plot = NewPlot("Test accuracy against parameter count (one point per epoch)", "parameters", "test accuracy (%)");
        var line = plot.Add.Scatter(metrics.Epochs.Select(e => (double)e.Parameters).ToArray(),
                                    metrics.Epochs.Select(e => 100 * e.TestAccuracy).ToArray());
        line.LegendText = "epoch end";
        foreach (var e in metrics.Epochs)
        {
            var label = plot.Add.Text($"{e.Epoch}", e.Parameters, 100 * e.TestAccuracy);
            label.LabelFontSize = 11;
        }
        return plot;
    }

    static string Text(string runFolder, RunMetrics metrics)
    {
        var s = new StringBuilder();
        var name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(runFolder)));
        // The run id: a run writes its report in <id>.partial before renaming the folder to <id>.
        const string partial = ".partial";
        if (name.EndsWith(partial, StringComparison.Ordinal)) name = name[..^partial.Length];
        s.AppendLine($"# Run {name}").AppendLine();
        if (metrics.Final is { } f)
        {
            s.AppendLine("| final | |").AppendLine("|---|---|");
            s.AppendLine($"| test accuracy | {RunMetrics.Show(100 * f.TestAccuracy, "F2")} % |");
            s.AppendLine($"| parameters | {f.Parameters:N0} |".Replace(',', ' '));
            s.AppendLine($"| widths | {string.Join(" / ", f.Widths)} |");
            if (f.WidthsSetBy is { } setBy)
                s.AppendLine($"| widths set by | {string.Join(" / ", setBy)} |");
            s.AppendLine($"| time | {RunMetrics.Show(f.Seconds, "F1")} s, of which growth {RunMetrics.Show(f.GrowthSeconds, "F1")} s |");
        }
        else if (metrics.Interrupted is { } x)
            s.AppendLine($"The run did not complete: it stopped in epoch {x.Epoch} after batch {x.Batch} ({x.Reason}). The figures show what it wrote until then.");
        else
            s.AppendLine("The run did not complete (no `final` line): it is still running, or it was killed. The figures show what it wrote until then.");
        s.AppendLine();
        if (metrics.Epochs.Count > 0 && metrics.Epochs[^1] is var last)
            s.AppendLine($"Last epoch ({last.Epoch}): train loss {RunMetrics.Show(last.TrainLoss, "F4")}, test loss {RunMetrics.Show(last.TestLoss, "F4")}, " +
                         $"test accuracy {RunMetrics.Show(100 * last.TestAccuracy, "F2")} %, {last.Parameters} parameters.").AppendLine();
        var grown = metrics.Growths.Where(g => g.Added > 0).ToList();
        s.AppendLine($"Growth: {grown.Sum(g => g.Added)} neurons added in {grown.Count} junction updates ({metrics.Growths.Count} growth lines).").AppendLine();
        var captions = new[]
        {
            "Loss (left axis) and test accuracy (right axis) per epoch; dashed lines: growth steps",
            "Width of every growable layer over time",
            "Bottleneck per junction, measured before each growth step",
            "Test accuracy against parameter count, one point per epoch (labelled)",
        };
        for (var i = 0; i < Figures.Count; i++)
            s.AppendLine($"## {captions[i]}").AppendLine().AppendLine($"![{captions[i]}]({Figures[i]})").AppendLine();
        s.AppendLine("Growth steps carry only their epoch in metrics.jsonl; within an epoch they are drawn evenly spaced, as the schedule spaces them.");
        return s.ToString();
    }
}
