namespace TinyGrow.Host.Commands;

/// <summary>The short usage text.</summary>
public static class Usage
{
    /// <summary>Writes the usage to <paramref name="output"/>.</summary>
    public static void Write(TextWriter output) => output.Write(
        """
        Usage: tinygrow [run|plugins|daemon|jobs|help] [--experiment <file.json>] [--Section:Key=value ...]
               tinygrow resume <run-folder> [--Section:Key=value ...]
               tinygrow submit <experiment.json> [--Section:Key=value ...]
               tinygrow report <run-folder>
               tinygrow export <run-folder>

        Verbs:
          run       train the experiment, growing the network (default)
          resume    continue an interrupted run (<id>.partial) from its last good checkpoint,
                    with the configuration in its config.json (only Checkpoint:*, Output:*,
                    Plugins:Folders, Dataset:Download/Mirror/DownloadStallSeconds and Logging:*
                    may change); refused while another process writes the folder
          plugins   list the layer kinds, growth strategies and datasets found in plugins/
          report    draw the figures and report.md of a run folder from its metrics.jsonl
          export    write model.pt and tinygrow_model.py (PyTorch) of a run folder's model.json + model.bin
          daemon    run the jobs of the queue one at a time, until stopped: a folder (Daemon:QueueFolder)
                    or PostgreSQL (Daemon:Queue=postgres, Daemon:ConnectionString)
          submit    put a copy of an experiment file in the queue; prints the job's id
          jobs      list the queue's jobs, their states and reasons
          help      this text (also --help, -h)

        Configuration, lowest to highest precedence:
          appsettings.json beside the executable
          --experiment <file.json>          an experiment file (see experiments/)
          TINYGROW_Section__Key=value       environment variables
          --Section:Key=value               command line, e.g. --Training:Epochs=2
                                            --Model:Layers:0:Width=8  --Growth:Strategy=none  --Device=cpu
        Sections: Dataset, Model, Growth, Training, Output, Checkpoint, Device, Plugins:Folders, Daemon, Logging

        Unknown keys, gaps in list indices (Model:Layers:0, 1, 2…) and values of the wrong type are errors.

        Exit codes: 0 done, 1 run failed or unexpected error, 2 bad configuration or usage
                    (also: a run that would not fit in memory at its MaxWidths, the queue's
                    PostgreSQL server unreachable or refusing the credentials),
                    3 dataset missing or corrupt, 4 a plugin broke its contract during the run
                    (e.g. a strategy's proposal of the wrong shape: plugin, junction and field named),
                    130 interrupted (Ctrl-C).
                    SIGTERM checkpoints and exits 0 (during a growth step: the step is abandoned,
                    the checkpoint before it stands, exit 130). A failed or interrupted run keeps its
                    <Output:Directory>/<run-id>.partial/ (tinygrow resume continues it).

        """);
}
