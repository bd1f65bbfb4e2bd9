using System.Globalization;
using System.Text.Json;

namespace TinyGrow.Host.Reports;

/// <summary>A report's input is missing or unreadable; the message names the file (and the line).</summary>
public sealed class ReportException(string message) : Exception(message);

/// <summary>An <c>epoch</c> line of metrics.jsonl (NaN where the run wrote null: a non-finite value).</summary>
public sealed record EpochLine(int Epoch, double TrainLoss, double TestLoss, double TestAccuracy, long Parameters, int[] Widths, double Seconds);

/// <summary>A <c>growth</c> line: one junction at one growth step.</summary>
public sealed record GrowthLine(int Epoch, int Junction, int Added, int Width, double Gamma, double PredictedDecrease, double MeasuredDecrease, double Bottleneck);

/// <summary>The <c>final</c> line of a completed run.</summary>
/// <param name="TestAccuracy">Test accuracy at the last epoch, in [0, 1].</param>
/// <param name="Parameters">Trained parameters of the final network.</param>
/// <param name="Widths">The grown layers' final widths.</param>
/// <param name="Seconds">Wall time of the run.</param>
/// <param name="GrowthSeconds">Of which growth.</param>
/// <param name="WidthsSetBy">Per grown layer, what set its width ("MaxWidth", "significance test", "empty steps",
/// "schedule, still growing", "schedule"); null for a fixed network or a run written before the field.</param>
public sealed record FinalLine(double TestAccuracy, long Parameters, int[] Widths, double Seconds, double GrowthSeconds, string[]? WidthsSetBy = null);

/// <summary>The <c>interrupted</c> line of a run that stopped early.</summary>
public sealed record InterruptedLine(string Reason, int Epoch, int Batch);

/// <summary>What a run's metrics.jsonl holds, line by line as docs/metrics.md describes it.</summary>
/// <param name="Path">The file read.</param>
/// <param name="Epochs">Epoch lines, in file order.</param>
/// <param name="Growths">Growth lines, in file order.</param>
/// <param name="Final">The final line, or null (a run that did not complete).</param>
/// <param name="Interrupted">The interrupted line, or null.</param>
/// <param name="Warnings">What was read but skipped (an incomplete last line).</param>
public sealed record RunMetrics(string Path, IReadOnlyList<EpochLine> Epochs, IReadOnlyList<GrowthLine> Growths,
    FinalLine? Final, InterruptedLine? Interrupted, IReadOnlyList<string> Warnings)
{
    /// <summary>Reads <paramref name="path"/>. Unknown events are skipped (a newer run may write more);
    /// a last line without its newline that does not parse is skipped with a warning (a run killed
    /// mid-write); anything else unreadable is a <see cref="ReportException"/> naming the line.</summary>
    public static RunMetrics Read(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ReportException($"{path} not found: a run folder written by `tinygrow run` holds metrics.jsonl. Give the run's folder (runs/<run-id>).");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ReportException($"{path} cannot be read ({e.Message}).");
        }
        var epochs = new List<EpochLine>();
        var growths = new List<GrowthLine>();
        var warnings = new List<string>();
        FinalLine? final = null;
        InterruptedLine? interrupted = null;
        var lines = text.Split('\n');
        var events = 0;
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].TrimEnd('\r');
            if (line.Trim().Length == 0) continue;
            var number = i + 1;
            var isLastUnterminated = i == lines.Length - 1; // no '\n' after it
            JsonElement e;
            try
            {
                using var document = JsonDocument.Parse(line);
                e = document.RootElement.Clone();
            }
            catch (JsonException x) when (isLastUnterminated)
            {
                warnings.Add($"{path} line {number}: incomplete last line skipped (the run stopped while writing it: {x.Message})");
                continue;
            }
            catch (JsonException x)
            {
                throw new ReportException($"{path} line {number}: not a JSON object ({x.Message}). The file is corrupt; metrics.jsonl holds one JSON object per line.");
            }
            var at = new Line(path, number, e);
            if (e.ValueKind != JsonValueKind.Object) throw at.Problem("is not a JSON object");
            events++;
            switch (at.String("event"))
            {
                case "epoch":
                    epochs.Add(new(at.Int("epoch"), at.Number("train_loss"), at.Number("test_loss"), at.Accuracy("test_accuracy"),
                        at.Long("parameters"), at.Ints("widths"), at.Number("seconds")));
                    break;
                case "growth":
                    growths.Add(new(at.Int("epoch"), at.Int("junction"), at.Int("added"), at.Int("width"), at.Number("gamma"),
                        at.Number("predicted_decrease"), at.Number("measured_decrease"), at.Number("bottleneck")));
                    break;
                case "final":
                    final = new(at.Accuracy("test_accuracy"), at.Long("parameters"), at.Ints("widths"), at.Number("seconds"), at.Number("growth_seconds"),
                        at.OptionalStrings("widths_set_by"));
                    break;
                case "interrupted":
                    interrupted = new(at.String("reason"), at.Int("epoch"), at.Int("batch"));
                    break;
            }
        }
        if (events == 0)
            throw new ReportException($"{path} holds no events: the run stopped before its first growth step or epoch; there is nothing to report.");
        return new(path, epochs, growths, final, interrupted, warnings);
    }

    // One line's fields, each read with an error that names the file, the line and the field.
    readonly record struct Line(string Path, int LineNumber, JsonElement Element)
    {
        public ReportException Problem(string what) =>
            new($"{Path} line {LineNumber}: {what}. The file is corrupt (docs/metrics.md gives the fields of each event).");

        JsonElement Field(string name) =>
            Element.TryGetProperty(name, out var value) ? value : throw Problem($"'{name}' is missing");

        public string String(string name) =>
            Field(name) is { ValueKind: JsonValueKind.String } v ? v.GetString()! : throw Problem($"'{name}' is not a string");

        // The run writes null for NaN and ±∞ (not JSON).
        public double Number(string name) => Field(name) switch
        {
            { ValueKind: JsonValueKind.Null } => double.NaN,
            { ValueKind: JsonValueKind.Number } v => v.GetDouble(),
            _ => throw Problem($"'{name}' is not a number"),
        };

        /// <summary>A fraction in [0, 1] (null, which the engine writes for a non-finite value: NaN); an
        /// infinite or out-of-range number would print as "Infinity %" in the report.</summary>
        public double Accuracy(string name) => Number(name) switch
        {
            double.NaN => double.NaN,
            var a when a is >= 0 and <= 1 => a,
            var a => throw Problem($"'{name}' = {a.ToString(System.Globalization.CultureInfo.InvariantCulture)} is not an accuracy (a fraction between 0 and 1)"),
        };

        public long Long(string name) =>
            Field(name) is { ValueKind: JsonValueKind.Number } v && v.TryGetInt64(out var x) ? x : throw Problem($"'{name}' is not an integer");

        public int Int(string name) =>
            Field(name) is { ValueKind: JsonValueKind.Number } v && v.TryGetInt32(out var x) ? x : throw Problem($"'{name}' is not an integer");

        /// <summary>An array of strings, or null when the field is absent (a field added later).</summary>
        public string[]? OptionalStrings(string name) =>
            !Element.TryGetProperty(name, out var v) ? null
            : v.ValueKind == JsonValueKind.Array && v.EnumerateArray().All(x => x.ValueKind == JsonValueKind.String)
                ? v.EnumerateArray().Select(x => x.GetString()!).ToArray()
                : throw Problem($"'{name}' is not an array of strings");

        public int[] Ints(string name) =>
            Field(name) is { ValueKind: JsonValueKind.Array } v && v.EnumerateArray().All(x => x.ValueKind == JsonValueKind.Number && x.TryGetInt32(out _))
                ? v.EnumerateArray().Select(x => x.GetInt32()).ToArray()
                : throw Problem($"'{name}' is not an array of integers");
    }

    /// <summary>Where each growth line sits on the time axis, in epochs (0 = start of training).
    /// Growth steps are evenly spaced within an epoch (at batches k·B/K) but their lines carry only
    /// the epoch: consecutive lines are one step while their junction increases, and the steps of
    /// epoch e are spread as e − 1 + i/K.</summary>
    public double[] GrowthTimes()
    {
        var times = new double[Growths.Count];
        var i = 0;
        while (i < Growths.Count)
        {
            var epoch = Growths[i].Epoch;
            var end = i;
            while (end < Growths.Count && Growths[end].Epoch == epoch) end++;
            var steps = new List<int>(); // step index of each line of this epoch
            var step = 0;
            for (var k = i; k < end; k++)
            {
                if (k > i && Growths[k].Junction <= Growths[k - 1].Junction) step++;
                steps.Add(step);
            }
            var count = step + 1;
            for (var k = i; k < end; k++)
                times[k] = epoch - 1 + (double)steps[k - i] / count;
            i = end;
        }
        return times;
    }

    /// <summary>The number of growable layers (junctions) the run reports.</summary>
    public int Junctions =>
        Math.Max(Epochs.Select(e => e.Widths.Length).DefaultIfEmpty(0).Max(),
                 Growths.Select(g => g.Junction + 1).DefaultIfEmpty(0).Max());

    /// <summary>Formats a number for report.md (invariant culture).</summary>
    internal static string Show(double value, string format) =>
        double.IsNaN(value) ? "n/a" : value.ToString(format, CultureInfo.InvariantCulture);
}
