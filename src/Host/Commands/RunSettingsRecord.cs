using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace TinyGrow.Host.Commands;

/// <summary>
/// <c>run-settings.json</c>: the settings that shape a run's result, as the run resolved them
/// (config.json's keys, flattened to <c>Section:Key</c>), with a SHA-256 of them. config.json is what
/// <c>resume</c> reads, and it can be edited; this record is what a resume is checked against, so
/// that an edited config.json or an override on resume's command line that changes the model, the
/// data, the schedule or the device is refused, naming the keys, instead of silently training
/// another experiment in the run's folder.
/// </summary>
/// <remarks>Safe to change on resume (<see cref="SafePrefixes"/>): <c>Checkpoint:*</c> (when
/// checkpoints are written: resume is exact whichever), <c>Output:*</c> (the folder given to resume is
/// what counts; <c>Output:Progress</c> is display only), <c>Plugins:Folders</c> (where plugins are
/// found, not which: the strategy and kinds are named by other keys), <see cref="SafeKeys"/> (how a
/// missing dataset is fetched). <c>Logging:*</c> and
/// <c>Daemon:*</c> are not part of a run's settings at all.</remarks>
public static class RunSettingsRecord
{
    /// <summary>The record's name inside a run folder.</summary>
    public static readonly string FileName = TinyGrow.Core.Checkpoint.settingsFile; // a checkpoint records its hash

    /// <summary>Key prefixes a resume may change.</summary>
    public static readonly IReadOnlyList<string> SafePrefixes = ["Checkpoint:", "Output:", "Plugins:"];

    /// <summary>Keys a resume may change: how a missing dataset is fetched, not which data it is (a
    /// downloaded file is checked against its published MD5).</summary>
    public static readonly IReadOnlyList<string> SafeKeys = ["Dataset:Download", "Dataset:Mirror", "Dataset:DownloadStallSeconds"];

    /// <summary>The keys a resume may change, as docs/checkpoints.md and the refusal name them.</summary>
    public const string SafeText = "Checkpoint:*, Output:*, Plugins:Folders, Dataset:Download, Dataset:Mirror, Dataset:DownloadStallSeconds and Logging:*";

    /// <summary>The shaping settings of a resolved configuration (config.json's object without its
    /// records), flattened to <c>Section:Key[:index…]</c> → value text, safe keys left out.</summary>
    public static SortedDictionary<string, string> Shaping(JsonNode resolved)
    {
        var keys = new SortedDictionary<string, string>(StringComparer.Ordinal);
        Flatten(resolved, "", keys);
        foreach (var key in keys.Keys.Where(k => SafePrefixes.Any(p => k.StartsWith(p, StringComparison.OrdinalIgnoreCase))
                                               || SafeKeys.Contains(k, StringComparer.OrdinalIgnoreCase)).ToList())
            keys.Remove(key);
        return keys;
    }

    static void Flatten(JsonNode? node, string path, SortedDictionary<string, string> keys)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var (name, child) in o) Flatten(child, path.Length == 0 ? name : $"{path}:{name}", keys);
                break;
            case JsonArray a:
                for (var i = 0; i < a.Count; i++) Flatten(a[i], $"{path}:{i}", keys);
                break;
            case JsonValue v:
                keys[path] = v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : v.ToJsonString();
                break;
            default:
                keys[path] = "null";
                break;
        }
    }

    /// <summary>The SHA-256 (hex) of the settings, one <c>key=value</c> line each in ordinal key order.</summary>
    public static string Hash(IReadOnlyDictionary<string, string> settings)
    {
        var text = new StringBuilder();
        foreach (var (key, value) in settings.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            text.Append(key).Append('=').Append(value).Append('\n');
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }

    /// <summary>Writes the record into <paramref name="folder"/> (a temporary file, then renamed).</summary>
    public static void Write(string folder, IReadOnlyDictionary<string, string> settings)
    {
        var record = new JsonObject
        {
            ["Sha256"] = Hash(settings),
            ["Settings"] = new JsonObject(settings.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value)))),
        };
        var path = Path.Combine(folder, FileName);
        File.WriteAllText(path + ".tmp", record.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        File.Move(path + ".tmp", path, overwrite: true);
    }

    /// <summary>The outcome of checking a resume's settings against its folder's record.</summary>
    /// <param name="Refusal">Why the resume is refused (keys named, and the fix), or null.</param>
    /// <param name="Warning">A folder without a record (written before records existed): not checked.</param>
    public sealed record Outcome(string? Refusal, string? Warning);

    /// <summary>Checks <paramref name="now"/> (this resume's shaping settings) against the record in
    /// <paramref name="folder"/>.</summary>
    public static Outcome Check(string folder, IReadOnlyDictionary<string, string> now)
    {
        var path = Path.Combine(folder, FileName);
        var config = Path.Combine(folder, "config.json");
        var newRun = $"tinygrow run --experiment {config} --Output:RunId=<new id>";
        if (!File.Exists(path))
            return new(null, $"{folder} has no {FileName} (a run started before it was written): this resume's settings cannot be checked against the run's; resume only with the run's own settings.");
        Dictionary<string, string> recorded;
        try
        {
            var record = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new JsonException("not a JSON object");
            var settings = record["Settings"] as JsonObject ?? throw new JsonException("no Settings object");
            recorded = settings.ToDictionary(kv => kv.Key, kv => kv.Value?.GetValue<string>() ?? throw new JsonException($"{kv.Key} is null"), StringComparer.Ordinal);
            if (record["Sha256"]?.GetValue<string>() is not { } sha || !string.Equals(sha, Hash(recorded), StringComparison.OrdinalIgnoreCase))
                throw new JsonException("its SHA-256 does not match its settings");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or IOException or UnauthorizedAccessException)
        {
            return new($"{path} is damaged or was edited ({e.Message}), so the settings the run was started with are unknown and this resume cannot be checked. " +
                       $"Restore the file, or start a new run from the folder's settings: {newRun}.", null);
        }
        var changed = recorded.Keys.Union(now.Keys).Order(StringComparer.Ordinal)
            .Where(k => !recorded.TryGetValue(k, out var was) || !now.TryGetValue(k, out var isNow) || was != isNow)
            .Select(k => $"{k} = {Show(now, k)} (the run: {Show(recorded, k)})")
            .ToList();
        if (changed.Count == 0) return new(null, null);
        return new($"resume {folder}: {changed.Count} setting(s) differ from the run's, and they shape its result: {string.Join("; ", changed)}. " +
                   $"A resume continues the same run with the same settings: undo the change ({config}, the command line or TINYGROW_* variables), " +
                   $"or start a new run with them: {newRun} (and the same overrides). Only {SafeText} may change on resume.", null);
    }

    static string Show(IReadOnlyDictionary<string, string> settings, string key) =>
        settings.TryGetValue(key, out var value) ? value.Length == 0 ? "''" : value : "not set";
}
