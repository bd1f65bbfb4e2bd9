using System.ComponentModel.DataAnnotations;
using Npgsql;

namespace TinyGrow.Host.Configuration;

/// <summary>Section "Daemon": the job queue of <c>tinygrow daemon</c>, <c>submit</c> and <c>jobs</c>.</summary>
public sealed class DaemonOptions : IValidatableObject
{
    /// <summary>Value of <see cref="Queue"/> for the folder queue (one host; the default).</summary>
    public const string FolderQueue = "folder";

    /// <summary>Value of <see cref="Queue"/> for the PostgreSQL queue (many daemons on many hosts).</summary>
    public const string PostgresQueue = "postgres";

    /// <summary>Which queue: <c>folder</c> (<see cref="QueueFolder"/>) or <c>postgres</c>
    /// (<see cref="ConnectionString"/>).</summary>
    [RegularExpression("^(folder|postgres)$", ErrorMessage = "use folder or postgres.")]
    public string Queue { get; set; } = FolderQueue;

    /// <summary>The queue folder (holds incoming/, queued/, running/, done/, failed/); relative paths are
    /// resolved against the current directory. With the PostgreSQL queue, the folder where a daemon
    /// keeps the experiment file and output log of the job it runs.</summary>
    [Required, MinLength(1)]
    public string QueueFolder { get; set; } = "queue";

    /// <summary>Seconds between looks at an empty queue.</summary>
    [Range(0.01, 3600)]
    public double PollSeconds { get; set; } = 5;

    /// <summary>The PostgreSQL queue's Npgsql connection string (<c>Host=…;Port=…;Database=…;Username=…;Password=…</c>);
    /// best given through the environment (<c>TINYGROW_Daemon__ConnectionString</c>) or
    /// <c>PGPASSWORD</c>/<c>~/.pgpass</c> for the password, so that it is in no file.</summary>
    [System.ComponentModel.PasswordPropertyText(true)] // may hold a password: never shown in an error
    public string ConnectionString { get; set; } = "";

    /// <summary>PostgreSQL queue: seconds a claim lasts unless renewed (the running daemon renews it
    /// every third of this); a job whose daemon died is taken again once its lease has expired.</summary>
    [Range(1, 86400)]
    public double LeaseSeconds { get; set; } = 60;

    /// <inheritdoc/>
    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (Queue != PostgresQueue) yield break;
        if (string.IsNullOrWhiteSpace(ConnectionString))
        {
            yield return new("is required with Daemon:Queue=postgres: give it as Host=<host>;Port=5432;Database=<db>;Username=<user> " +
                             "(the password in TINYGROW_Daemon__ConnectionString, PGPASSWORD or ~/.pgpass).", [nameof(ConnectionString)]);
            yield break;
        }
        string? problem = null;
        try
        {
            var parsed = new NpgsqlConnectionStringBuilder(ConnectionString);
            if (string.IsNullOrWhiteSpace(parsed.Host)) problem = "it names no Host.";
        }
        catch (ArgumentException e)
        {
            // The message names the bad keyword, never the value (which may be the password).
            problem = $"it is not an Npgsql connection string ({e.Message.Split('\n')[0].TrimEnd('.')}).";
        }
        if (problem is not null)
            yield return new($"{problem} Give it as Host=<host>;Port=5432;Database=<db>;Username=<user>.", [nameof(ConnectionString)]);
    }
}
