using System.ComponentModel.DataAnnotations;
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
        if (settings.Model.Preset.Length == 0 && settings.Model.Layers.Count == 0)
            errors.Add("Model:Layers is empty: list the hidden layers (e.g. --Model:Layers:0:Width=1) or choose a preset (--Model:Preset=resnet18).");
        Layers(errors, settings.Model.Layers);
        if (!DevicePattern().IsMatch(settings.Device))
            errors.Add($"Device = '{settings.Device}': use auto, cpu, cuda or cuda:<index> (e.g. --Device=cpu).");
        if (settings.Output.RunId.Length > 0 && (settings.Output.RunId.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0 || settings.Output.RunId is "." or ".."))
            errors.Add($"Output:RunId = '{settings.Output.RunId}': it names a folder, so it cannot contain '/' or other path characters. Choose a plain name.");
        if (catalogue is not null) Names(errors, settings, catalogue);
        return errors;
    }

    static void Annotations(List<string> errors, string section, object options)
    {
        var results = new List<ValidationResult>();
        if (Validator.TryValidateObject(options, new ValidationContext(options), results, validateAllProperties: true)) return;
        foreach (var result in results)
            foreach (var member in result.MemberNames.DefaultIfEmpty(""))
            {
                var key = member.Length == 0 ? section : $"{section}:{member}";
                var value = member.Length == 0 ? null : options.GetType().GetProperty(member)?.GetValue(options);
                errors.Add($"{key} = {Show(value)}: {result.ErrorMessage} Set it in the experiment file or with --{key}=<value>.");
            }
    }

    static void Layers(List<string> errors, IReadOnlyList<TinyGrow.Abstractions.LayerSpec> layers)
    {
        for (var i = 0; i < layers.Count; i++)
        {
            var layer = layers[i];
            var key = $"Model:Layers:{i}";
            if (layer.Width < 1)
                errors.Add($"{key}:Width = {layer.Width}: a layer needs at least one neuron; set it to 1 or more (growth starts from there).");
            if (layer.MaxWidth < layer.Width)
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

    [GeneratedRegex("^(auto|cpu|cuda(:[0-9]+)?)$")]
    private static partial Regex DevicePattern();
}
