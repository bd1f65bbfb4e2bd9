namespace TinyGrow.Host.Commands;

/// <summary>The verbs of <c>tinygrow</c>.</summary>
public enum Verb
{
    /// <summary>Train (and grow) one experiment.</summary>
    Run,
    /// <summary>Continue an interrupted run from its folder's checkpoint.</summary>
    Resume,
    /// <summary>List the plugins discovered.</summary>
    Plugins,
    /// <summary>Print usage.</summary>
    Help,
}

/// <summary>The command line split into the verb and the configuration arguments.</summary>
/// <param name="Verb">The verb (<see cref="Verb.Run"/> when none is given).</param>
/// <param name="ConfigurationArguments">What the configuration's command-line layer reads
/// (<c>--Section:Key=value</c>, <c>--Section:Key value</c>, <c>--experiment path</c>).</param>
/// <param name="Error">A usage error, or null.</param>
/// <param name="Folder">The run folder of <see cref="Verb.Resume"/>, else null.</param>
public sealed record CommandLine(Verb Verb, IReadOnlyList<string> ConfigurationArguments, string? Error, string? Folder = null)
{
    /// <summary>Splits <paramref name="args"/>: the first bare word is the verb; <c>--help</c>, <c>-h</c>
    /// anywhere ask for usage; any other bare word or single-dash option is an error (the
    /// configuration layer would silently ignore it).</summary>
    public static CommandLine Parse(IReadOnlyList<string> args)
    {
        Verb? verb = null;
        string? folder = null;
        var help = false;
        var rest = new List<string>();
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (arg is "--help" or "-h" or "-?") { help = true; continue; }
            if (arg.StartsWith("--", StringComparison.Ordinal))
            {
                if (arg.Length == 2) return Fail("'--' alone is not an option: use --Section:Key=value");
                rest.Add(arg);
                // "--Key value": the next word is the value, whatever it looks like.
                if (!arg.Contains('=') && i + 1 < args.Count) rest.Add(args[++i]);
                else if (!arg.Contains('=')) return Fail($"{arg} needs a value: {arg}=<value> or {arg} <value>");
                continue;
            }
            if (arg.StartsWith('-')) return Fail($"unknown option '{arg}': configuration overrides take two dashes, --Section:Key=value");
            if (verb == Verb.Resume && folder is null) { folder = arg; continue; }
            if (verb is not null) return Fail($"unexpected argument '{arg}' after the verb '{verb.Value.ToString().ToLowerInvariant()}'");
            verb = arg.ToLowerInvariant() switch
            {
                "run" => Verb.Run,
                "resume" => Verb.Resume,
                "plugins" => Verb.Plugins,
                "help" => Verb.Help,
                _ => null,
            };
            if (verb is null) return Fail($"unknown verb '{arg}'");
        }
        if (help) return new(Verb.Help, rest, null);
        if (verb == Verb.Resume)
        {
            if (folder is null) return Fail("resume needs the run folder: tinygrow resume runs/<run-id>.partial");
            if (rest.Any(a => a.StartsWith("--experiment", StringComparison.OrdinalIgnoreCase)))
                return Fail("resume reads the run's own config.json: drop --experiment");
            // The run's resolved configuration is its experiment file; overrides still apply on top.
            return new(Verb.Resume, ["--Experiment", Path.Combine(folder, "config.json"), .. rest], null, folder);
        }
        return new(verb ?? Verb.Run, rest, null);
    }

    static CommandLine Fail(string error) => new(Verb.Help, [], error);
}
