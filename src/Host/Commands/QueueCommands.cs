using System.Text.Json;
using Microsoft.Extensions.Configuration;
using TinyGrow.Host.Configuration;
using TinyGrow.Host.Daemon;
using TinyGrow.Host.Plugins;

namespace TinyGrow.Host.Commands;

/// <summary><c>tinygrow submit &lt;experiment.json&gt;</c> and <c>tinygrow jobs</c>: the queue seen from
/// the command line (the queue named by <c>Daemon:QueueFolder</c>).</summary>
public static class QueueCommands
{
    /// <summary>Puts a copy of <paramref name="experiment"/> in the queue (whole or not at all);
    /// a file that cannot be read, is not JSON, or has a key or value `run` would refuse is refused
    /// (exit 2, naming it), nothing queued.</summary>
    public static int Submit(IJobQueue queue, string experiment, TextWriter output, TextWriter error, PluginCatalogue? catalogue = null)
    {
        string text;
        try
        {
            // As run reads it: a regular file of at most 1 MiB (a FIFO or /dev/zero is refused before
            // it is opened), a UTF-8 byte order mark dropped.
            var path = Path.GetFullPath(experiment);
            if (Directory.Exists(path)) throw new InvalidConfigurationException($"The experiment file {path} is a folder, not a file: give a JSON file such as experiments/quick.json.");
            if (!File.Exists(path)) throw new InvalidConfigurationException($"The experiment file {path} does not exist. Check the path.");
            text = System.Text.Encoding.UTF8.GetString(ConfigurationLayers.ReadFileBytes(path, "experiment file"));
        }
        catch (InvalidConfigurationException e)
        {
            error.WriteLine($"tinygrow: submit: {e.Message} Nothing queued.");
            return ExitCodes.BadConfiguration;
        }
        try
        {
            // As the configuration reads experiment files: comments and trailing commas allowed.
            using var _ = JsonDocument.Parse(text, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            error.WriteLine($"tinygrow: submit: {experiment} is not valid JSON (line {e.LineNumber + 1}, position {e.BytePositionInLine + 1}): nothing queued.");
            return ExitCodes.BadConfiguration;
        }
        // Keys and value types as `run` checks them (with this installation's appsettings.json): a
        // misspelt key is refused now, not when a daemon starts the job.
        try
        {
            var probe = new ConfigurationManager();
            probe.AddTinyGrowLayers(AppContext.BaseDirectory, ["--experiment", Path.GetFullPath(experiment)], Environment.CurrentDirectory);
            // Values and names as run checks them too (Epochs = 0, an unknown strategy or dataset).
            if (SettingsValidator.Validate(TinyGrowSettings.Bind(probe), catalogue) is { Count: > 0 } problems)
                throw new InvalidConfigurationException(string.Join(Environment.NewLine, problems));
        }
        catch (InvalidConfigurationException e)
        {
            foreach (var line in e.Message.Split(Environment.NewLine)) error.WriteLine($"tinygrow: submit: {line}");
            error.WriteLine("tinygrow: submit: nothing queued.");
            return ExitCodes.BadConfiguration;
        }
        var job = queue.Submit(Path.GetFileNameWithoutExtension(experiment), text);
        output.WriteLine(job.Id);
        return ExitCodes.Ok;
    }

    /// <summary>Lists every job: state, id, then its run folder (done) or reason (failed).</summary>
    public static int Jobs(IJobQueue queue, TextWriter output)
    {
        var jobs = queue.List();
        if (jobs.Count == 0) output.WriteLine("no jobs");
        foreach (var job in jobs)
        {
            var detail = job.State switch
            {
                JobState.Failed => job.Reason,
                JobState.Running => $"on {job.Owner}",
                _ => job.RunFolder,
            };
            output.WriteLine($"{job.State.ToString().ToLowerInvariant(),-8} {job.Id}{(detail is null ? "" : "  " + detail)}");
        }
        return ExitCodes.Ok;
    }
}
