using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using TinyGrow.Abstractions;
using TinyGrow.Core;
using TinyGrow.Host.Configuration;
using TinyGrow.Host.Plugins;
using TorchSharp;

namespace TinyGrow.Host.Commands;

/// <summary>
/// <c>tinygrow run</c>: validate, pick the device, load the dataset, then train in
/// <c>&lt;Output:Directory&gt;/&lt;run-id&gt;.partial/</c> and rename it to <c>&lt;run-id&gt;</c> when the run
/// completes, so a folder without the suffix is always a finished run.
/// </summary>
/// <param name="settings">The run's settings.</param>
/// <param name="catalogue">The plugins (layer and block kinds, strategies, datasets).</param>
/// <param name="loggers">Loggers of the command and the engine.</param>
/// <param name="clock">Names the run folder by time when no run id is set.</param>
/// <param name="progress">Where the engine reports epochs, batches and growth steps (the live display);
/// null: a log line every 15 s.</param>
public sealed class RunCommand(TinyGrowSettings settings, PluginCatalogue catalogue, ILoggerFactory loggers, TimeProvider clock, IRunProgress? progress = null)
{
    /// <summary>How long an interrupted engine gets to stop before the command returns anyway.</summary>
    public static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(10);

    readonly ILogger _log = loggers.CreateLogger("TinyGrow.Run");

    /// <summary>Where an error that ends the command is written when the log would not show it
    /// (<c>Logging:LogLevel:Default=None</c>, or the category turned off): standard error.</summary>
    public TextWriter ErrorOutput { get; init; } = Console.Error;

    // Every refusal and failure goes through here: logged at Error, or, when logging at Error is off,
    // written to ErrorOutput all the same, so that an exit code other than 0 never comes without its reason.
    void Error(Exception? exception, string template, params object?[] args)
    {
        if (_log.IsEnabled(LogLevel.Error))
        {
#pragma warning disable CA2254 // the templates are the constants of the call sites
            _log.LogError(exception, template, args);
#pragma warning restore CA2254
            return;
        }
        var i = 0;
        var message = System.Text.RegularExpressions.Regex.Replace(template, @"\{[^{}]+\}",
            m => i < args.Length ? Convert.ToString(args[i++], CultureInfo.InvariantCulture) ?? "" : m.Value);
        ErrorOutput.WriteLine($"tinygrow: {message}");
    }

    /// <summary>The run's folder once claimed (<c>.partial</c> until the run completes), for a report
    /// of an error that escapes the command; null before the claim.</summary>
    public string? Folder { get; private set; }

    /// <summary>Runs the experiment; returns an <see cref="ExitCodes"/> value.</summary>
    public Task<int> ExecuteAsync(CancellationToken cancellation) => ExecuteAsync(null, cancellation);

    /// <summary><c>tinygrow resume &lt;folder&gt;</c>: continues the run in <paramref name="folder"/>
    /// (a <c>&lt;run-id&gt;.partial</c> folder; the settings are its config.json) from its newest good
    /// checkpoint, or from its beginning when it has none; returns an <see cref="ExitCodes"/> value.</summary>
    public Task<int> ResumeAsync(string folder, CancellationToken cancellation) => ExecuteAsync(folder, cancellation);

    // One run folder, one writer: the lock is held from the claim (run) or from before anything is
    // read (resume) until the command returns, whatever the outcome.
    RunLock? _lock;

    async Task<int> ExecuteAsync(string? resumeFolder, CancellationToken cancellation)
    {
        try
        {
            return await ExecuteLockedAsync(resumeFolder, cancellation);
        }
        finally
        {
            _lock?.Dispose();
            _lock = null;
        }
    }

    async Task<int> ExecuteLockedAsync(string? resumeFolder, CancellationToken cancellation)
    {
        var errors = SettingsValidator.Validate(settings, catalogue);
        if (errors.Count > 0)
        {
            foreach (var error in errors) Error(null, "Invalid configuration: {Error}", error);
            return ExitCodes.BadConfiguration;
        }
        // More intra-op threads than cores only take turns: 1,024 made a 1 s run take 47 s here.
        if (settings.Training.Threads > Environment.ProcessorCount)
            _log.LogWarning("Training:Threads = {Threads} is more than this machine's {Cores} cores: the threads would take turns and slow the run down. " +
                            "Use at most {Cores}, or 0 (auto)", settings.Training.Threads, Environment.ProcessorCount, Environment.ProcessorCount);
        if (ResolveDevice(settings.Device, out var device, out var deviceError) is var code && code != ExitCodes.Ok)
        {
            Error(null, "{Error}", deviceError);
            return code;
        }
        var root = Path.GetFullPath(settings.Output.Directory);
        if (resumeFolder is not null && ResumeRefusal(resumeFolder, device) is { } refused)
        {
            Error(null, "{Error}", refused);
            return ExitCodes.BadConfiguration;
        }
        if (resumeFolder is null && RunFolder.CheckChosen(root, settings.Output.RunId) is { } inUse)
        {
            Error(null, "{Error}", inUse);
            return ExitCodes.BadConfiguration;
        }

        LoadedDataset data;
        try
        {
            data = catalogue.GetDatasetProvider(settings.Dataset.Name).Load(settings.Dataset.Name, settings.Dataset, device, cancellation);
        }
        catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
        {
            _log.LogWarning("Cancelled while loading dataset '{Dataset}'; nothing was written", settings.Dataset.Name);
            return ExitCodes.Cancelled;
        }
        catch (DatasetException e)
        {
            Error(null, "Dataset '{Dataset}': {Error}", settings.Dataset.Name, e.Message);
            return ExitCodes.DatasetError;
        }
        catch (Exception e)
        {
            Error(e, "Dataset '{Dataset}' could not be loaded: {Error}", settings.Dataset.Name, e.Message);
            return ExitCodes.DatasetError;
        }
        // A stop asked while the dataset loaded (a loader that does not watch the token: reading local
        // files) is honoured before anything is written: exit 130, no run folder (issue 21 §4).
        if (cancellation.IsCancellationRequested)
        {
            data.Dispose();
            _log.LogWarning("Cancelled while loading dataset '{Dataset}'; nothing was written", settings.Dataset.Name);
            return ExitCodes.Cancelled;
        }
        data = data.WithLimits(settings.Dataset);
        LogSources(data);

        using (data)
        {
            if (EmptySplit(data) is ({ } empty, var exitCode))
            {
                Error(null, "Dataset '{Dataset}': {Error}", settings.Dataset.Name, empty);
                return exitCode;
            }
            // Shapes are known once the dataset is: a kernel larger than its map, pooling to nothing,
            // a flatten that does not fit are refused here, before the run folder exists.
            var modelProblems = ModelPlan.problems(catalogue.BlockKinds, settings.Model, data.InputShape, data.Classes);
            if (!modelProblems.IsEmpty)
            {
                foreach (var problem in modelProblems)
                    Error(null, "{Problem}", problem);
                return ExitCodes.BadConfiguration;
            }
            // A null strategy means a fixed network (Growth:Strategy = none).
            IGrowthStrategy? strategy = IsFixed ? null : catalogue.GetStrategy(settings.Growth.Strategy);
            using var engine = new GrowthEngine(catalogue.BlockKinds, catalogue.LayerKinds, strategy, loggers.CreateLogger("TinyGrow.Engine"));
            if (progress is not null) engine.Observer = progress;
            engine.InputStatisticsCache = settings.Output.ResolvedCacheDirectory();
            // Before the model is built and before the folder is claimed: a run that cannot fit at
            // its largest widths is refused now, naming the keys that drive it.
            if (MemoryRefusal(data, device) is { } refusal)
            {
                Error(null, "{Error}", refusal);
                return ExitCodes.BadConfiguration;
            }
            // The input covariances depend on the data alone: a spare core computes them while the run is set up
            // (the default run grows at its first batch). Disposing the engine ends them if the run does not start.
            if (resumeFolder is null)
                engine.StartInputCovariances(data, settings.Model, settings.Training, settings.Growth, device);
            string runId, partial, final;
            if (resumeFolder is not null)
            {
                partial = Path.GetFullPath(resumeFolder).TrimEnd(Path.DirectorySeparatorChar);
                final = partial[..^SettingsValidator.PartialSuffix.Length];
                runId = Path.GetFileName(final);
                Folder = partial;
            }
            else
            {
                // Nothing is written before the claim succeeds; the claim is the only test that counts
                // (another run may have taken the id while the dataset loaded).
                RunFolder claimed;
                try
                {
                    claimed = RunFolder.Claim(root, settings.Output.RunId, clock.GetUtcNow());
                }
                catch (RunFolderException e)
                {
                    Error(null, "{Error}", e.Message);
                    return ExitCodes.BadConfiguration;
                }
                (runId, partial, final) = claimed;
                Folder = partial;
                try
                {
                    _lock = RunLock.Take(partial);
                }
                catch (RunFolderException e)
                {
                    Error(null, "{Error}", e.Message);
                    return ExitCodes.BadConfiguration;
                }
                try
                {
                    RunConfigFile.Write(Path.Combine(partial, "config.json"), settings, catalogue, runId, device, data.Sources);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    Error(null, "Output:Directory = '{Directory}': cannot write {Folder} ({Error}). Choose a writable --Output:Directory.",
                        settings.Output.Directory, partial, e.Message);
                    return ExitCodes.BadConfiguration;
                }
            }
            _log.LogInformation("{Verb} {RunId}: {Dataset} ({Train} train, {Test} test samples; {Pipeline}) on {Device}, strategy {Strategy}, writing to {Folder}",
                resumeFolder is null ? "Run" : "Resuming run", runId, data.Name, data.Train.Count, data.Test.Count, data.Pipeline, RunConfigFile.DeviceName(device), settings.Growth.Strategy, partial);

            // On a thread of its own (LongRunning): the run blocks for its whole length, and on the thread pool
            // it held one of its few threads (as many as cores), so the engine's own short tasks (a strategy
            // call, the input statistics cache write) could wait about 0.5 s for the pool to add one.
            var training = Task.Factory.StartNew(() => engine.Run(data, settings.Model, settings.Training, settings.Growth, device, partial, settings.Checkpoint, resumeFolder is not null, cancellation),
                CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            try
            {
                var summary = await WaitOrGiveUp(training, cancellation);
                Report(partial);
                if (Directory.Exists(final) || File.Exists(final))
                {
                    // Something took the run's final name while it trained (only its .partial folder is claimed): the
                    // run is complete, so say where it is; `resume` would call it finished and do nothing.
                    Error(null, "Run {RunId} finished, but {Final} appeared while it trained, so its folder was not renamed: its results are complete in {Folder}. Move {Final} away and rename {Folder} to it.",
                        runId, final, partial, final, partial);
                    return ExitCodes.RunFailed;
                }
                Directory.Move(partial, final);
                Folder = final;
                _lock?.DeleteAndRelease(final);
                _lock = null;
                try { Checkpoint.remove(final); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    _log.LogWarning("Could not remove the checkpoints of the finished run in {Folder}: {Error}", final, e.Message);
                }
                _log.LogInformation("Run {RunId} done: test accuracy {Accuracy}, {Parameters} parameters, widths {Widths}, {Seconds} s. Results in {Folder}",
                    runId, summary.TestAccuracy.ToString("P2", CultureInfo.InvariantCulture), summary.Parameters,
                    string.Join("/", summary.Widths), summary.Seconds.ToString("F1", CultureInfo.InvariantCulture), final);
                return ExitCodes.Ok;
            }
            catch (Exception) when (cancellation.IsCancellationRequested)
            {
                // SIGTERM is how a service manager or scheduler stops a job it means to restart: once
                // the checkpoint is written, that is a clean stop (0). Ctrl-C is a person stopping a
                // run: 130, as shells expect, with the checkpoint written all the same.
                // This block can run inside the host's signal handler (StopApplication runs the stopping
                // callbacks on the calling thread), before ours has recorded which signal it was: wait on
                // another thread, so that this one returns to the handlers.
                await Task.Run(() => StopSignal.WaitForSignal(TimeSpan.FromSeconds(1)));
                var terminated = StopSignal.Terminated && engine.CheckpointedOnStop;
                var how = StopSignal.Terminated ? "SIGTERM" : "Ctrl-C";
                Interrupted(training, partial, engine.CheckpointedOnStop
                    ? $"interrupted ({how}); checkpoint written: tinygrow resume {partial}"
                    : $"interrupted ({how})", engine.Progress);
                if (engine.CheckpointedOnStop)
                    _log.LogWarning("Run {RunId} stopped ({How}) at a checkpoint; continue it with: tinygrow resume {Folder}", runId, how, partial);
                else
                    _log.LogWarning("Run {RunId} interrupted ({How}); its partial results are left in {Folder}", runId, how, partial);
                if (training.IsCompleted) Report(partial);
                return terminated ? ExitCodes.Ok : ExitCodes.Cancelled;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // A full disk or a run folder made unwritable under the run: not a bug, and the last checkpoint stands.
                Interrupted(training, partial, e.Message, engine.Progress);
                Error(null, "Run {RunId} stopped by an I/O error: {Error} Free space or make {Folder} writable, then continue the run from its last checkpoint with: tinygrow resume {Folder}",
                    runId, e.Message, partial, partial);
                return ExitCodes.RunFailed;
            }
            catch (Exception e) when (e is NonFiniteLossException or ProposalCheck.PluginFaultException)
            {
                // Foreseen stops, said in one line without a trace. A plugin that broke its contract (a proposal of the
                // wrong shape, a strategy past its timeout, a block whose resume does not match its forward) is the
                // plugin's fault, not the run's: its own exit code (4).
                Interrupted(training, partial, e.Message, engine.Progress);
                Report(partial);
                Error(null, "Run {RunId} stopped: {Error} Its partial results are left in {Folder}", runId, e.Message, partial);
                return e is ProposalCheck.PluginFaultException ? ExitCodes.PluginFault : ExitCodes.RunFailed;
            }
            catch (Exception e)
            {
                Interrupted(training, partial, e.Message, engine.Progress);
                if (training.IsCompleted) Report(partial);
                Error(e, "Run {RunId} failed: {Error}. Its partial results are left in {Folder}", runId, e.Message, partial);
                return ExitCodes.RunFailed;
            }
        }
    }

    /// <summary>What makes <paramref name="folder"/> impossible to resume; null if nothing. Program checks it
    /// before any configuration is read (resume reads the folder's config.json as its experiment, whose
    /// own "experiment file does not exist (--experiment …)" would name an option the user never gave).</summary>
    public static string? ResumeProblem(string folder)
    {
        var path = Path.GetFullPath(folder).TrimEnd(Path.DirectorySeparatorChar);
        if (File.Exists(path))
            return $"resume {folder}: {folder} is a file, not a run folder. Give the folder of an interrupted run: runs/<run-id>{SettingsValidator.PartialSuffix} (ls runs/).";
        if (!Directory.Exists(path))
            return $"resume {folder}: {folder} does not exist. Give the folder of an interrupted run: runs/<run-id>{SettingsValidator.PartialSuffix} (ls runs/).";
        if (!path.EndsWith(SettingsValidator.PartialSuffix, StringComparison.Ordinal))
            return File.Exists(Path.Combine(path, "config.json"))
                ? $"resume {folder}: only an unfinished run (a folder named <run-id>{SettingsValidator.PartialSuffix}) can be resumed; this one has finished."
                : $"resume {folder}: {folder} is not a run folder (it has no config.json). Give the folder of an interrupted run: runs/<run-id>{SettingsValidator.PartialSuffix} (ls runs/).";
        if (Directory.Exists(path[..^SettingsValidator.PartialSuffix.Length]) || File.Exists(path[..^SettingsValidator.PartialSuffix.Length]))
            return $"resume {folder}: {path[..^SettingsValidator.PartialSuffix.Length]} already exists (the run finished); nothing to resume.";
        if (!File.Exists(Path.Combine(path, "config.json")))
            return $"resume {folder}: {folder} is not a run folder (it has no config.json), so the run's settings are unknown.";
        // The files a resume opens in place (the others it writes beside their names and renames): a link would be
        // written through, wherever it points; a FIFO would hang the open, a folder lose the checkpoints' metrics.
        foreach (var name in new[] { RunLock.FileName, "metrics.jsonl" })
        {
            var file = Path.Combine(path, name);
            var info = new FileInfo(file);
            if (info.LinkTarget is { } target)
                return $"resume {folder}: {file} is a symbolic link (to {target}); a resume writes that file in place. Put the run's own file there (run.lock may simply be deleted when no process runs the folder).";
            if (Directory.Exists(file))
                return $"resume {folder}: {file} is a folder, where the run keeps a file. Move it away, and restore the run's own {name} if you have it.";
            if (info.Exists && FileKind.Of(file).Kind is { } kind)
                return $"resume {folder}: {file} is {kind}, not a regular file. Put the run's own file there (run.lock may simply be deleted when no process runs the folder).";
        }
        return null;
    }

    // A split without samples gives an accuracy of NaN, or a run that "finishes" without training:
    // nothing such a run reports would mean anything.
    // The files are named when the provider reported them; a split cut to one sample by Dataset:TrainSamples is the
    // configuration's doing (exit 2), one that holds one sample the dataset's (exit 3).
    (string? Error, int ExitCode) EmptySplit(LoadedDataset data)
    {
        if (data.Train.Count == 0 || data.Test.Count == 0)
        {
            var split = data.Train.Count == 0 ? "train" : "test";
            var files = data.Sources.Where(f => f.Split == split).Select(f => f.Path).ToList();
            return ($"the {(split == "train" ? "training" : "test")} split has no samples ({data.Train.Count} training, {data.Test.Count} test). " +
                    (files.Count > 0 ? $"Check {string.Join(" and ", files)}." : "Check the dataset's files under Dataset:Root."), ExitCodes.DatasetError);
        }
        if (!IsFixed && data.Train.Count < 2)
            return settings.Dataset.TrainSamples is > 0 and < 2
                ? ($"growth needs at least 2 training samples (statistics and the γ search use disjoint ones); Dataset:TrainSamples={settings.Dataset.TrainSamples} leaves {data.Train.Count}. " +
                   "Set Dataset:TrainSamples to 2 or more (0: all), or --Growth:Strategy=none.", ExitCodes.BadConfiguration)
                : ($"growth needs at least 2 training samples (statistics and the γ search use disjoint ones); there is {data.Train.Count}. " +
                   "Use a larger dataset, or --Growth:Strategy=none.", ExitCodes.DatasetError);
        return (null, ExitCodes.Ok);
    }

    // The last line of metrics.jsonl of a run that stopped early says why and where; written only
    // once the engine has stopped (and closed the file).
    void Interrupted(Task training, string folder, string reason, RunProgress progress)
    {
        var metrics = Path.Combine(folder, "metrics.jsonl");
        if (!training.IsCompleted || !File.Exists(metrics)) return;
        try { RunGuards.writeInterrupted(metrics, reason, progress); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _log.LogWarning("Could not record the interruption in {File}: {Error}", metrics, e.Message);
        }
    }

    // The figures and report.md, written into the folder before it is renamed, so that a finished
    // run's folder holds them. A report that cannot be drawn does not undo a finished run: it is a
    // warning, and `tinygrow report <folder>` can try again.
    void Report(string folder)
    {
        try
        {
            foreach (var warning in Reports.RunReport.Write(folder))
                _log.LogWarning("Report: {Warning}", warning);
        }
        catch (Exception e)
        {
            _log.LogWarning("No report for {Folder}: {Error}", folder, e.Message);
        }
    }

    bool IsFixed => string.Equals(settings.Growth.Strategy, SettingsValidator.NoGrowth, StringComparison.OrdinalIgnoreCase);

    // The engine is asked to stop through the token; if it has not after StopGrace, the command
    // returns anyway so that Ctrl-C always ends the process.
    static async Task<RunSummary> WaitOrGiveUp(Task<RunSummary> training, CancellationToken cancellation)
    {
        var interrupted = new TaskCompletionSource();
        await using (cancellation.Register(() => interrupted.TrySetResult()))
            await Task.WhenAny(training, interrupted.Task);
        if (!training.IsCompleted)
            await Task.WhenAny(training, Task.Delay(StopGrace));
        if (!training.IsCompleted) throw new OperationCanceledException(cancellation);
        return await training;
    }

    /// <summary>Resolves "auto", "cpu", "cuda", "cuda:N" to a device that exists here; returns
    /// <see cref="ExitCodes.Ok"/> or the exit code for <paramref name="error"/>.</summary>
    public static int ResolveDevice(string requested, out torch.Device device, out string error)
    {
        device = torch.CPU;
        error = "";
        bool cuda;
        try
        {
            cuda = torch.cuda.is_available();
        }
        catch (Exception e)
        {
            error = $"TorchSharp could not load its native libraries ({e.Message}). Rebuild the application (make build) on this machine.";
            return ExitCodes.RunFailed;
        }
        switch (requested)
        {
            case "cpu":
                return ExitCodes.Ok;
            case "auto":
                device = cuda ? torch.CUDA : torch.CPU;
                return ExitCodes.Ok;
        }
        if (!cuda)
        {
            error = $"Device = '{requested}' but CUDA is not available here (no GPU or driver, or a CPU build of libtorch). " +
                    "Use --Device=cpu or --Device=auto, or on a GPU host build with -p:TorchBackend=cuda.";
            return ExitCodes.BadConfiguration;
        }
        var index = 0;
        if (requested.Length > 5 && !int.TryParse(requested[5..], NumberStyles.None, CultureInfo.InvariantCulture, out index))
            index = int.MaxValue; // more digits than any host has devices: reported just below
        if (index >= torch.cuda.device_count())
        {
            error = $"Device = '{requested}' but this host has {torch.cuda.device_count()} CUDA device(s). Use cuda:0 … cuda:{torch.cuda.device_count() - 1}.";
            return ExitCodes.BadConfiguration;
        }
        device = new torch.Device(DeviceType.CUDA, index);
        return ExitCodes.Ok;
    }

    string? MemoryRefusal(LoadedDataset data, torch.Device device)
    {
        var terms = MemoryEstimate.Terms(settings, data, out var unknown);
        if (terms is null)
        {
            _log.LogInformation("Memory: not estimated (layer kind '{Kind}' is a plugin's own; its memory is not known here)", unknown);
            return null;
        }
        var total = MemoryEstimate.Text(terms.Sum(t => t.Bytes));
        var parts = string.Join("; ", terms.OrderByDescending(t => t.Bytes).Take(3).Select(t => $"{t.What}: {MemoryEstimate.Text(t.Bytes)}"));
        if (device.type == DeviceType.CUDA)
        {
            _log.LogInformation("Memory: about {Estimate} at the largest widths ({Parts}); not checked on CUDA (TorchSharp does not report a device's free memory)", total, parts);
            return null;
        }
        if (MemoryEstimate.AvailableOnCpu() is not { } available)
        {
            _log.LogInformation("Memory: about {Estimate} at the largest widths ({Parts}); not checked (no /proc/meminfo here)", total, parts);
            return null;
        }
        _log.LogInformation("Memory: about {Estimate} at the largest widths ({Parts}); {Available} available", total, parts, MemoryEstimate.Text(available));
        return MemoryEstimate.Refusal(terms, available, MemoryEstimate.DatasetBytes(data), "MemAvailable in /proc/meminfo");
    }

    // Which copy of the data the run trains on: Dataset:Root may lack a file that the system copy
    // has, or the files may have just been downloaded; config.json records the same list.
    void LogSources(LoadedDataset data)
    {
        if (data.Sources.Count == 0)
        {
            _log.LogInformation("Dataset '{Dataset}': its plugin does not report the files it read", data.Name);
            return;
        }
        foreach (var file in data.Sources)
            _log.LogInformation("Dataset '{Dataset}' {Split} split read from {Path} ({Bytes} bytes, {Origin})",
                data.Name, file.Split, file.Path, file.Bytes, OriginText(file.Origin));
        if (data.Sources.Any(f => f.Origin == DataFileOrigin.System))
            _log.LogWarning("Dataset '{Dataset}': Dataset:Root ({Root}) does not hold all of its files, so the system copy was read; put the files under Dataset:Root to use another copy",
                data.Name, Path.GetFullPath(settings.Dataset.Root));
    }

    static string OriginText(DataFileOrigin origin) => origin switch
    {
        DataFileOrigin.Root => "from Dataset:Root",
        DataFileOrigin.System => "the system copy",
        _ => "downloaded by this run",
    };

    // A resume is refused before anything is read or written when another process writes the folder,
    // or when its settings (config.json as it is now, environment, command line) differ from the
    // run's in a key that shapes the result. Takes the folder's lock (kept until the command returns).
    string? ResumeRefusal(string resumeFolder, torch.Device device)
    {
        var partial = Path.GetFullPath(resumeFolder).TrimEnd(Path.DirectorySeparatorChar);
        try
        {
            _lock = RunLock.Take(partial);
        }
        catch (RunFolderException e)
        {
            return $"resume {resumeFolder}: {e.Message}";
        }
        var runId = Path.GetFileName(partial[..^SettingsValidator.PartialSuffix.Length]);
        var outcome = RunSettingsRecord.Check(partial, RunSettingsRecord.Shaping(RunConfigFile.Resolved(settings, runId, device)));
        if (outcome.Warning is not null) _log.LogWarning("{Warning}", outcome.Warning);
        return outcome.Refusal;
    }
}
