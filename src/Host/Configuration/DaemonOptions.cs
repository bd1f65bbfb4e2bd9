using System.ComponentModel.DataAnnotations;

namespace TinyGrow.Host.Configuration;

/// <summary>Section "Daemon": the job queue of <c>tinygrow daemon</c>, <c>submit</c> and <c>jobs</c>.</summary>
public sealed class DaemonOptions
{
    /// <summary>The queue folder (holds queued/, running/, done/, failed/); relative paths are
    /// resolved against the current directory.</summary>
    [Required, MinLength(1)]
    public string QueueFolder { get; set; } = "queue";

    /// <summary>Seconds between looks at an empty queue.</summary>
    [Range(0.01, 3600)]
    public double PollSeconds { get; set; } = 5;
}
