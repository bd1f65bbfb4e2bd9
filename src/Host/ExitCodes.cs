namespace TinyGrow.Host;

/// <summary>Process exit codes (documented in <c>tinygrow --help</c>).</summary>
public static class ExitCodes
{
    /// <summary>Success.</summary>
    public const int Ok = 0;
    /// <summary>The run failed while training (its <c>.partial</c> folder is kept), or an error no
    /// code foresaw escaped (reported by <see cref="Failure"/> with the run folder, if any).</summary>
    public const int RunFailed = 1;
    /// <summary>Bad command line or configuration, unknown plugin name, unavailable device, run folder
    /// taken or not writable. Nothing written.</summary>
    public const int BadConfiguration = 2;
    /// <summary>The dataset is missing or corrupt.</summary>
    public const int DatasetError = 3;
    /// <summary>A plugin broke its contract while the run trained (e.g. a growth strategy's proposal of the wrong
    /// shape, with NaN, or with more neurons than the layer has room for): the message names the plugin, its
    /// assembly and version, the junction and the field. Nothing of that step was applied; the <c>.partial</c>
    /// folder and its last checkpoint are kept.</summary>
    public const int PluginFault = 4;
    /// <summary>Interrupted by Ctrl-C, or by SIGTERM before the run started or without a checkpoint (SIGTERM at a
    /// checkpoint exits 0: the run is resumable); the <c>.partial</c> folder is kept. 128 + SIGINT, as shells do.</summary>
    public const int Cancelled = 130;
}
