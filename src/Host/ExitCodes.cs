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
    /// <summary>Interrupted by Ctrl-C, or by SIGTERM before the run started or without a checkpoint (SIGTERM at a
    /// checkpoint exits 0: the run is resumable); the <c>.partial</c> folder is kept. 128 + SIGINT, as shells do.</summary>
    public const int Cancelled = 130;
}
