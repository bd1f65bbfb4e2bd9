using System.Text.Json;
using TinyGrow.Abstractions;
using TinyGrow.Host.Configuration;
using TinyGrow.Host.Plugins;
using TorchSharp;

namespace TinyGrow.Host.Commands;

/// <summary>A run folder's config.json: the whole resolved configuration, so that the run can be repeated
/// from its own folder (<c>tinygrow run --experiment runs/&lt;id&gt;/config.json --Output:RunId=&lt;new id&gt;</c>)
/// and resumed from it, with two records read back by nobody: the dataset files the run read and the plugins
/// that served it (file and SHA-256). run-settings.json, what a resume is checked against, is written from it.</summary>
static class RunConfigFile
{
    /// <summary>The device as config.json names it ("cpu", "cuda:N").</summary>
    public static string DeviceName(torch.Device device) =>
        device.type == DeviceType.CUDA ? $"cuda:{Math.Max(device.index, 0)}" : "cpu";

    // Settings only: computed properties (a layer's ResolvedPadding) are not keys, and strict configuration
    // would refuse them when the file is read back.
    static readonly JsonSerializerOptions ConfigJson = new()
    {
        WriteIndented = true,
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() },
        TypeInfoResolver = new System.Text.Json.Serialization.Metadata.DefaultJsonTypeInfoResolver
        {
            Modifiers =
            {
                info =>
                {
                    if (info.Type.Namespace?.StartsWith("TinyGrow", StringComparison.Ordinal) != true) return;
                    foreach (var property in info.Properties.Where(p => p.Set is null).ToList())
                        info.Properties.Remove(property);
                },
            },
        },
    };

    // Every plugin that served a name in this run: its assembly, version, file and SHA-256.
    static List<PluginRecord> LoadedPlugins(PluginCatalogue catalogue) =>
        catalogue.Entries.Select(e => e.Plugin).DistinctBy(p => p.Path)
            .Select(p => new PluginRecord(p.Name, p.Version, p.Path, Sha256Of(p.Path))).ToList();

    static string Sha256Of(string path)
    {
        try
        {
            using var stream = File.OpenRead(path);
            return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(stream));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"unreadable ({e.Message})";
        }
    }

    /// <summary>The resolved settings as config.json holds them, without its records.</summary>
    public static System.Text.Json.Nodes.JsonObject Resolved(TinyGrowSettings settings, string runId, torch.Device device) =>
        (System.Text.Json.Nodes.JsonObject)JsonSerializer.SerializeToNode(new
        {
            settings.Dataset,
            settings.Model,
            settings.Growth,
            settings.Training,
            settings.Checkpoint,
            Output = new OutputOptions { Directory = settings.Output.Directory, RunId = runId, CacheDirectory = settings.Output.CacheDirectory },
            Device = DeviceName(device),
            settings.Plugins,
        }, ConfigJson)!;

    /// <summary>config.json (written beside and renamed in), then run-settings.json (what a resume is checked against).</summary>
    public static void Write(string path, TinyGrowSettings settings, PluginCatalogue catalogue, string runId, torch.Device device, IReadOnlyList<DataFile> sources)
    {
        var resolved = Resolved(settings, runId, device);
        var shaping = RunSettingsRecord.Shaping(resolved);
        // A record, not a setting: ignored when the file is read back (resume, a repeated run).
        resolved["DatasetFiles"] = JsonSerializer.SerializeToNode(sources, ConfigJson);
        resolved[ConfigurationSchema.LoadedPluginsKey] = JsonSerializer.SerializeToNode(LoadedPlugins(catalogue), ConfigJson);
        var temporary = path + ".tmp";
        File.WriteAllText(temporary, resolved.ToJsonString(ConfigJson));
        File.Move(temporary, path);
        RunSettingsRecord.Write(Path.GetDirectoryName(path)!, shaping);
    }
}
