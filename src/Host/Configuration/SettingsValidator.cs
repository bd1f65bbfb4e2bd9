using System.ComponentModel.DataAnnotations;
using System.Reflection;
using System.Text.RegularExpressions;
using TinyGrow.Host.Plugins;

namespace TinyGrow.Host.Configuration;

/// <summary>
/// Checks the bound settings before anything is written: the DataAnnotations of the option classes,
/// the hidden layers, the device, and (given a catalogue) that every named layer kind, strategy and
/// dataset is served by a plugin. Each error is one line naming the key, the value and the fix.
/// </summary>
public static partial class SettingsValidator
{
    /// <summary>Value of Growth:Strategy that trains a fixed network (no strategy plugin needed).</summary>
    public const string NoGrowth = "none";

    /// <summary>All errors; empty when the settings can be used.</summary>
    public static IReadOnlyList<string> Validate(TinyGrowSettings settings, PluginCatalogue? catalogue = null)
    {
        var errors = new List<string>();
        Annotations(errors, "Dataset", settings.Dataset);
        Annotations(errors, "Model", settings.Model);
        Annotations(errors, "Growth", settings.Growth);
        Annotations(errors, "Training", settings.Training);
        Annotations(errors, "Output", settings.Output);
        Annotations(errors, "Checkpoint", settings.Checkpoint);
        Annotations(errors, "Plugins", settings.Plugins);
        Annotations(errors, "Daemon", settings.Daemon);
        if (settings.Model.Preset.Length == 0 && settings.Model.Layers.Count == 0)
            errors.Add("Model:Layers = 0 entries: list the hidden layers (e.g. --Model:Layers:0:Width=1) or choose a preset (--Model:Preset=resnet18).");
        Layers(errors, settings.Model.Layers);
        if (!DevicePattern().IsMatch(settings.Device))
            errors.Add($"Device = '{settings.Device}': use auto, cpu, cuda or cuda:<index> (e.g. --Device=cpu).");
        RunId(errors, settings.Output.RunId);
        CacheDirectory(errors, settings.Output.CacheDirectory);
        if (catalogue is not null) Names(errors, settings, catalogue);
        return errors;
    }

    // The DataAnnotations of an option class and, recursively, of the option objects it holds (a
    // list of layer specs, a nested section): a spec class added to ModelOptions is checked by its
    // own attributes, with its full key (Model:Layers:0:Width), and no change here.
    static void Annotations(List<string> errors, string key, object options, int depth = 0)
    {
        if (depth > 8) return; // option classes are shallow trees; this only stops a cycle
        var results = new List<ValidationResult>();
        if (!Validator.TryValidateObject(options, new ValidationContext(options), results, validateAllProperties: true))
            foreach (var result in results)
                foreach (var member in result.MemberNames.DefaultIfEmpty(""))
                {
                    var memberKey = member.Length == 0 ? key : $"{key}:{member}";
                    var property = member.Length == 0 ? null : options.GetType().GetProperty(member);
                    var value = property?.GetValue(options);
                    var shown = property?.GetCustomAttribute<System.ComponentModel.PasswordPropertyTextAttribute>()?.Password == true
                        ? "(not shown: it may hold a password)" : Show(value);
                    var how = value is System.Collections.ICollection
                        ? $"Give its elements in the experiment file or with --{memberKey}:0…"
                        : $"Set it in the experiment file or with --{memberKey}=<value>.";
                    errors.Add($"{memberKey} = {shown}: {result.ErrorMessage} {how}");
                }
        foreach (var property in options.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (property.GetIndexParameters().Length > 0 || ConfigurationSchema.IsValue(property.PropertyType)) continue;
            switch (property.GetValue(options))
            {
                case null:
                    break;
                case System.Collections.IEnumerable items:
                    var i = 0;
                    foreach (var item in items)
                    {
                        if (item is not null && !ConfigurationSchema.IsValue(item.GetType()))
                            Annotations(errors, $"{key}:{property.Name}:{i}", item, depth + 1);
                        i++;
                    }
                    break;
                case var nested:
                    Annotations(errors, $"{key}:{property.Name}", nested, depth + 1);
                    break;
            }
        }
    }

    /// <summary>Suffix of a run folder until the run completes.</summary>
    public const string PartialSuffix = ".partial";

    // A run id names a folder in a possibly shared output folder: a portable file name, no hidden
    // files, no control characters, and never one that looks like an unfinished run.
    static void RunId(List<string> errors, string runId)
    {
        if (runId.Length == 0) return;
        if (!RunIdPattern().IsMatch(runId))
            errors.Add($"Output:RunId = '{Printable(runId)}': a run id names a folder, so it may hold only letters, digits, '.', '_' and '-', " +
                       "start with a letter or digit, and be at most 100 characters. Choose a plain name, or leave it empty for a timestamp.");
        else if (runId.EndsWith(PartialSuffix, StringComparison.OrdinalIgnoreCase))
            errors.Add($"Output:RunId = '{runId}': it may not end in '{PartialSuffix}', which marks a run that has not finished. Choose another name.");
    }

    static void CacheDirectory(List<string> errors, string folder)
    {
        if (folder.Length == 0 || folder == "off") return;
        if (folder.IndexOfAny(Path.GetInvalidPathChars()) >= 0 || folder.Any(char.IsControl))
            errors.Add($"Output:CacheDirectory = '{Printable(folder)}': not a usable folder name (it holds a control character). Give a folder, leave it empty for <Output:Directory>/.cache, or set it to off.");
        else if (File.Exists(folder))
            errors.Add($"Output:CacheDirectory = '{folder}': that is a file, not a folder. Give a folder, leave it empty for <Output:Directory>/.cache, or set it to off.");
    }

    static string Printable(string text) =>
        string.Concat(text.Select(c => char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString()));

    static void Layers(List<string> errors, IReadOnlyList<TinyGrow.Abstractions.LayerSpec> layers)
    {
        for (var i = 0; i < layers.Count; i++)
        {
            var layer = layers[i];
            var key = $"Model:Layers:{i}";
            if (layer.Width >= 1 && layer.MaxWidth < layer.Width)
                errors.Add($"{key}:MaxWidth = {layer.MaxWidth} is below {key}:Width = {layer.Width}: set MaxWidth ≥ Width.");
            if (string.IsNullOrWhiteSpace(layer.Kind))
                errors.Add($"{key}:Kind is empty: name a layer kind, e.g. \"dense\".");
            if (string.IsNullOrWhiteSpace(layer.Activation))
                errors.Add($"{key}:Activation is empty: name an activation, e.g. \"relu\".");
        }
    }

    static void Names(List<string> errors, TinyGrowSettings settings, PluginCatalogue catalogue)
    {
        void Check(string key, string name, Func<string, object> resolve)
        {
            try { resolve(name); }
            catch (UnknownPluginNameException e) { errors.Add($"{key} = '{name}': {e.Message}"); }
        }

        Check("Dataset:Name", settings.Dataset.Name, catalogue.GetDatasetProvider);
        if (!string.Equals(settings.Growth.Strategy, NoGrowth, StringComparison.OrdinalIgnoreCase))
            Check("Growth:Strategy", settings.Growth.Strategy, catalogue.GetStrategy);
        var layers = settings.Model.Layers;
        for (var i = 0; i < layers.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(layers[i].Kind)) continue;
            Check($"Model:Layers:{i}:Kind", layers[i].Kind, catalogue.GetLayerKind);
            if (catalogue.LayerKinds.TryGetValue(layers[i].Kind, out var kind))
                foreach (var problem in kind.Validate(layers[i]))
                    errors.Add($"Model:Layers:{i}: {problem}");
        }
    }

    static string Show(object? value) => value switch
    {
        null => "(empty)",
        string s => $"'{s}'",
        System.Collections.ICollection c => $"{c.Count} entries",
        IFormattable f => f.ToString(null, System.Globalization.CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\z")]
    private static partial Regex RunIdPattern();

    [GeneratedRegex(@"^(auto|cpu|cuda(:[0-9]+)?)\z")]
    private static partial Regex DevicePattern();
}
