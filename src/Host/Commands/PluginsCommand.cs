using TinyGrow.Host.Plugins;

namespace TinyGrow.Host.Commands;

/// <summary><c>tinygrow plugins</c>: a plain aligned table of what each plugin serves, then the folders
/// searched and the plugin files refused, each with what to do about it.</summary>
public sealed class PluginsCommand(PluginCatalogue catalogue, DiscoveryResult discovery)
{
    /// <summary>Writes the listing to <paramref name="output"/>; always succeeds.</summary>
    public int Execute(TextWriter output)
    {
        string[] header = ["PLUGIN", "KIND", "NAME", "VERSION"];
        var rows = catalogue.Entries.Select(e => new[] { e.Plugin.Name, e.Kind, e.Name, e.Plugin.Version }).ToList();
        if (rows.Count == 0)
            output.WriteLine("No plugins found.");
        else
        {
            var widths = header.Select((h, c) => rows.Max(r => r[c].Length) is var w && w > h.Length ? w : h.Length).ToArray();
            string Line(string[] cells) => string.Join("  ", cells.Select((cell, c) => cell.PadRight(widths[c]))).TrimEnd();
            output.WriteLine(Line(header));
            foreach (var row in rows) output.WriteLine(Line(row));
        }
        output.WriteLine();
        output.WriteLine($"Searched: {string.Join(", ", discovery.Folders)}");
        foreach (var problem in discovery.Problems.Concat(catalogue.Refused))
            output.WriteLine($"Refused:  {problem.Path}: {problem.Reason}. Fix: {problem.Fix}");
        return ExitCodes.Ok;
    }
}
