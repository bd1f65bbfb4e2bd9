using System.Globalization;
using Spectre.Console;
using Spectre.Console.Rendering;
using TinyGrow.Abstractions;

namespace TinyGrow.Host.Progress;

/// <summary>
/// The live progress display of a run on a terminal: epoch and batch bars, the epoch's loss, the
/// current widths, growth steps (which junction grew by how much), the last epoch's accuracy and the
/// downloads in progress. The engine and the downloader only record into it (under a lock, at once);
/// one loop redraws it five times a second with Spectre.Console's live display and writes the log
/// lines (<see cref="WriteLine"/>) above it: the console is written from that one thread only, since
/// Spectre's live display is not thread safe.
/// </summary>
public sealed class LiveProgress(IAnsiConsole console) : IRunProgress, IDownloadProgress, IAsyncDisposable
{
    const int BarWidth = 32;
    readonly object _gate = new();
    readonly object _lines = new(); // guards _pending and whether the loop or the caller writes a line
    readonly Queue<string> _pending = new();
    readonly SemaphoreSlim _wake = new(0);
    readonly Dictionary<string, (long Received, long? Total, bool Done)> _downloads = new(StringComparer.Ordinal);
    int _epochs, _batches, _epoch, _batch, _growthSteps, _growingStep = -1, _lastEpoch;
    double _meanLoss = double.NaN, _lastTrainLoss, _lastAccuracy;
    IReadOnlyList<int> _widths = [];
    readonly List<string> _lastGrowth = new();
    CancellationTokenSource? _stop;
    Task? _drawing;

    /// <inheritdoc />
    public void Started(int epochs, int batchesPerEpoch, int epoch, int batch, IReadOnlyList<int> widths)
    {
        lock (_gate) (_epochs, _batches, _epoch, _batch, _widths) = (epochs, batchesPerEpoch, epoch, batch, widths.ToArray());
    }

    /// <inheritdoc />
    public void Batch(int epoch, int batch, int batches, double meanLoss)
    {
        lock (_gate) (_epoch, _batch, _batches, _meanLoss) = (epoch, batch, batches, meanLoss);
    }

    /// <inheritdoc />
    public void Growing(int epoch, int step)
    {
        lock (_gate)
        {
            _growingStep = step;
            _lastGrowth.Clear();
            // The step at an epoch's start comes before its first batch: show the new epoch already.
            if (epoch != _epoch) (_epoch, _batch, _meanLoss) = (epoch, 0, double.NaN);
        }
    }

    /// <inheritdoc />
    public void Grown(int step, int junction, int added, IReadOnlyList<int> widths)
    {
        lock (_gate)
        {
            _growingStep = -1;
            _growthSteps = step + 1;
            _widths = widths.ToArray();
            _lastGrowth.Add(Invariant($"junction {junction} +{added} → {widths[junction]}"));
        }
    }

    /// <inheritdoc />
    public void Epoch(int epoch, int epochs, double trainLoss, double testAccuracy, IReadOnlyList<int> widths)
    {
        lock (_gate)
        {
            (_lastEpoch, _lastTrainLoss, _lastAccuracy, _widths) = (epoch, trainLoss, testAccuracy, widths.ToArray());
            _growingStep = -1; // a step that grew nothing reports no junction
        }
    }

    /// <inheritdoc />
    public void Download(string file, long received, long? total, bool done)
    {
        lock (_gate) _downloads[file] = (received, total, done);
    }

    /// <summary>What the display shows now.</summary>
    public IRenderable Render()
    {
        lock (_gate)
        {
            var grid = new Grid().AddColumn(new GridColumn().NoWrap().PadRight(2)).AddColumn();
            foreach (var (file, (received, total, done)) in _downloads)
                grid.AddRow(new Markup("download"), new Markup(DownloadText(file, received, total, done)));
            if (_epochs > 0)
            {
                grid.AddRow(new Markup("epoch"), new Markup($"{Bar(_epoch - 1 + (double)_batch / Math.Max(_batches, 1), _epochs)} {Invariant($"{_epoch}/{_epochs}")}"));
                var loss = double.IsNaN(_meanLoss) ? "" : Invariant($"  loss {_meanLoss:F4}");
                grid.AddRow(new Markup("batch"), new Markup($"{Bar(_batch, _batches)} {Invariant($"{_batch}/{_batches}")}{loss}"));
                grid.AddRow(new Markup("widths"), new Markup(string.Join("/", _widths)));
                var growth = _growingStep >= 0
                    ? Invariant($"[yellow]step {_growingStep + 1} running…[/]")
                    : _growthSteps == 0 ? "none yet"
                    : Invariant($"{_growthSteps} step{(_growthSteps == 1 ? "" : "s")}") + (_lastGrowth.Count > 0 ? $"; last: {Markup.Escape(string.Join(", ", _lastGrowth))}" : "");
                grid.AddRow(new Markup("growth"), new Markup(growth));
                if (_lastEpoch > 0)
                    grid.AddRow(new Markup("last epoch"), new Markup(Invariant($"{_lastEpoch}: train loss {_lastTrainLoss:F4}, test accuracy {_lastAccuracy * 100:F2} %")));
            }
            else if (_downloads.Count == 0)
                grid.AddRow(new Markup("run"), new Markup("loading the dataset…"));
            return grid;
        }
    }

    /// <summary>Writes a line of Spectre markup: above the display while it runs (at its next redraw,
    /// at once), directly otherwise.</summary>
    public void WriteLine(string markup)
    {
        lock (_lines)
        {
            if (_drawing is null)
            {
                console.MarkupLine(markup);
                return;
            }
            _pending.Enqueue(markup);
        }
        _wake.Release();
    }

    /// <summary>Starts redrawing until <see cref="StopAsync"/>; returns this display, whose disposal stops it.</summary>
    public LiveProgress Start()
    {
        lock (_lines)
        {
            if (_drawing is not null) throw new InvalidOperationException("the live display is already running");
            var stop = _stop = new CancellationTokenSource();
            _drawing = console.Live(Render()).AutoClear(false).Overflow(VerticalOverflow.Ellipsis).StartAsync(async context =>
            {
                while (!stop.IsCancellationRequested)
                {
                    WritePending();
                    context.UpdateTarget(Render());
                    try { await _wake.WaitAsync(200, stop.Token); }
                    catch (OperationCanceledException) { }
                }
                WritePending();
                context.UpdateTarget(Render()); // the last state stays on screen
            });
        }
        return this;
    }

    /// <summary>Stops redrawing, leaving the last state on screen.</summary>
    public async Task StopAsync()
    {
        Task? drawing;
        lock (_lines) drawing = _drawing;
        if (drawing is null) return;
        _stop!.Cancel();
        await drawing;
        lock (_lines)
        {
            WritePending(); // lines that came after the loop's last turn
            _drawing = null;
        }
        _stop.Dispose();
    }

    void WritePending()
    {
        while (true)
        {
            string line;
            lock (_lines)
                if (!_pending.TryDequeue(out line!)) return;
            console.Write(new ErasingLines(new Markup(line)));
        }
    }

    // A line written where the display was is written over the display's old rows, which Spectre does
    // not clear: a short (wrapped) line would leave a bar's tail beside it. Each row is erased first.
    sealed class ErasingLines(IRenderable inner) : IRenderable
    {
        static readonly Segment Erase = Segment.Control("\u001b[2K");

        public Measurement Measure(RenderOptions options, int maxWidth) => inner.Measure(options, maxWidth);

        public IEnumerable<Segment> Render(RenderOptions options, int maxWidth)
        {
            yield return Erase;
            foreach (var segment in inner.Render(options, maxWidth))
            {
                yield return segment;
                if (segment.IsLineBreak) yield return Erase;
            }
            yield return Segment.LineBreak;
        }
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => new(StopAsync());

    static string Bar(double done, double total)
    {
        var filled = total <= 0 ? 0 : (int)Math.Round(BarWidth * Math.Clamp(done / total, 0, 1));
        return $"[green]{new string('━', filled)}[/][grey]{new string('━', BarWidth - filled)}[/]";
    }

    static string DownloadText(string file, long received, long? total, bool done)
    {
        var name = Markup.Escape(file);
        if (done) return Invariant($"{name}: {received / 1e6:F1} MB, done");
        return total is { } t and > 0
            ? $"{Bar(received, t)} {name}: {Invariant($"{received / 1e6:F1} of {t / 1e6:F1} MB")}"
            : Invariant($"{name}: {received / 1e6:F1} MB");
    }

    static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
