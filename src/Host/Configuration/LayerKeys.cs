using System.Globalization;
using Microsoft.Extensions.Configuration;
using TinyGrow.Abstractions;

namespace TinyGrow.Host.Configuration;

/// <summary>
/// Keys of a <see cref="LayerSpec"/> that its kind does not read. A <c>dense</c> layer reads
/// Kind, Width, MaxWidth, Activation and Bias; <c>Pool</c>, <c>Kernel</c>, <c>Stride</c>,
/// <c>Padding</c>, <c>Dilation</c> and <c>BatchNorm</c> are a conv layer's, and on a dense layer they
/// would be accepted and do nothing (config.json would say <c>"Pool": "max2"</c>, model.json none).
/// </summary>
/// <remarks>Every key has a default, so what counts is what a configuration source set: a key set on
/// a dense layer to anything but its default is refused. Set to its default it is accepted, since a
/// run's config.json records every key of every layer and is given back as an experiment (resume, a
/// repeated run). A plugin's own layer kinds are not checked here (their kind's Validate sees the spec).</remarks>
public static class LayerKeys
{
    /// <summary>The layer kind that reads none of <see cref="ConvOnly"/>.</summary>
    public const string Dense = "dense";

    /// <summary>Keys only conv layers read.</summary>
    public static readonly IReadOnlyList<string> ConvOnly =
        [nameof(LayerSpec.Kernel), nameof(LayerSpec.Stride), nameof(LayerSpec.Padding), nameof(LayerSpec.Dilation), nameof(LayerSpec.BatchNorm), nameof(LayerSpec.Pool)];

    static readonly LayerSpec Defaults = new();

    /// <summary>One sentence per key set on a layer whose kind does not read it; empty when none is.</summary>
    public static IReadOnlyList<string> Problems(IConfiguration configuration, IReadOnlyList<LayerSpec> layers)
    {
        var problems = new List<string>();
        for (var i = 0; i < layers.Count; i++)
        {
            if (!string.Equals(layers[i].Kind, Dense, StringComparison.OrdinalIgnoreCase)) continue;
            foreach (var name in ConvOnly)
            {
                var key = $"Model:Layers:{i}:{name}";
                if (configuration[key] is null) continue; // not set by any source
                var property = typeof(LayerSpec).GetProperty(name)!;
                var value = property.GetValue(layers[i]);
                var standard = property.GetValue(Defaults);
                if (value is string s ? string.Equals(s, (string?)standard, StringComparison.OrdinalIgnoreCase) : Equals(value, standard)) continue;
                var shown = value is string text ? $"'{text}'" : value is bool b ? (b ? "true" : "false") : System.Convert.ToString(value, CultureInfo.InvariantCulture);
                problems.Add($"{key} = {shown}: {name} applies to conv layers only, and Model:Layers:{i}:Kind is '{layers[i].Kind}', which ignores it. " +
                             $"Remove the key, or make the layer a conv (Kind \"conv\"){StrictKeys.Origin(configuration, key)}.");
            }
        }
        return problems;
    }
}
