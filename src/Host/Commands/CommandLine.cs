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
    /// <summary>Draw the figures and report.md of a run folder.</summary>
    Report,
    /// <summary>Run jobs from the queue, one at a time, until stopped.</summary>
    Daemon,
    /// <summary>Put an experiment file in the queue.</summary>
    Submit,
    /// <summary>List the queue's jobs and their states.</summary>
    Jobs,
    /// <summary>Write the PyTorch export (model.pt, tinygrow_model.py) of a run folder.</summary>
    Export,
}

/// <summary>The command line split into the verb and the configuration arguments.</summary>
/// <param name="Verb">The verb (<see cref="Verb.Run"/> when none is given).</param>
/// <param name="ConfigurationArguments">What the configuration's command-line layer reads
/// (<c>--Section:Key=value</c>, <c>--Section:Key value</c>, <c>--experiment path</c>).</param>
/// <param name="Error">A usage error, or null.</param>
/// <param name="Argument">The verb's one operand (<c>report &lt;run-folder&gt;</c>, <c>submit &lt;experiment.json&gt;</c>, <c>resume &lt;run-folder&gt;</c>, <c>export &lt;run-folder&gt;</c>), or null.</param>
public sealed record CommandLine(Verb Verb, IReadOnlyList<string> ConfigurationArguments, string? Error, string? Argument = null)
{
    /// <summary>Splits <paramref name="args"/>: the first bare word is the verb; <c>--help</c>, <c>-h</c>
    /// anywhere ask for usage; any other bare word or single-dash option is an error (the
    /// configuration layer would silently ignore it).</summary>
    public static CommandLine Parse(IReadOnlyList<string> args)
    {
        Verb? verb = null;
        string? operand = null;
        var help = false;
        var experiments = 0;
        var rest = new List<string>();
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (arg is "--help" or "-h" or "-?") { help = true; continue; }
            if (arg.StartsWith("--", StringComparison.Ordinal))
            {
                if (arg.Length == 2) return Fail("'--' alone is not an option: use --Section:Key=value");
                // One experiment file: the configuration layer would silently keep the last one given.
                if (string.Equals(arg.Split('=', 2)[0], "--experiment", StringComparison.OrdinalIgnoreCase) && experiments++ > 0)
                    return Fail("--experiment is given more than once: give one experiment file, and override single keys with --Section:Key=value");
                rest.Add(arg);
                // "--Key value": the next word is the value, unless it is itself an option ("--Output:Directory
                // --Training:Epochs=2" would otherwise write to a folder named "--Training:Epochs=2" and drop the
                // override); a value that starts with "--" can still be given as --Key=--value.
                if (!arg.Contains('=') && i + 1 < args.Count && !args[i + 1].StartsWith("--", StringComparison.Ordinal)) rest.Add(args[++i]);
                else if (!arg.Contains('='))
                    return Fail(i + 1 < args.Count
                        ? $"{arg} needs a value, and the next word, '{args[i + 1]}', is an option: {arg}=<value> or {arg} <value>"
                        : $"{arg} needs a value: {arg}=<value> or {arg} <value>");
                continue;
            }
            if (arg.StartsWith('-')) return Fail($"unknown option '{arg}': configuration overrides take two dashes, --Section:Key=value");
            if (verb is Verb.Report or Verb.Submit or Verb.Resume or Verb.Export && operand is null) { operand = arg; continue; }
            if (verb is not null) return Fail($"unexpected argument '{arg}' after the verb '{Name(verb.Value)}'");
            verb = arg.ToLowerInvariant() switch
            {
                "run" => Verb.Run,
                "resume" => Verb.Resume,
                "plugins" => Verb.Plugins,
                "help" => Verb.Help,
                "report" => Verb.Report,
                "daemon" => Verb.Daemon,
                "submit" => Verb.Submit,
                "jobs" => Verb.Jobs,
                "export" => Verb.Export,
                _ => null,
            };
            if (verb is null) return Fail($"unknown verb '{arg}'");
        }
        if (help) return new(Verb.Help, rest, null);
        if (verb is Verb.Report && operand is null) return Fail("report needs the run folder: tinygrow report runs/<run-id>");
        if (verb is Verb.Report && rest.Count > 0) return Fail($"report takes only a run folder, not configuration ('{rest[0]}')");
        if (verb is Verb.Export && operand is null) return Fail("export needs the run folder: tinygrow export runs/<run-id>");
        if (verb is Verb.Export && rest.Count > 0) return Fail($"export takes only a run folder, not configuration ('{rest[0]}')");
        if (verb is Verb.Submit && operand is null) return Fail("submit needs an experiment file: tinygrow submit experiments/quick.json");
        if (verb == Verb.Resume)
        {
            if (operand is null) return Fail("resume needs the run folder: tinygrow resume runs/<run-id>.partial");
            if (rest.Any(a => a.StartsWith("--experiment", StringComparison.OrdinalIgnoreCase)))
                return Fail("resume reads the run's own config.json: drop --experiment");
            // The run's resolved configuration is its experiment file; overrides still apply on top.
            return new(Verb.Resume, ["--Experiment", Path.Combine(operand, "config.json"), .. rest], null, operand);
        }
        return new(verb ?? Verb.Run, rest, null, operand);
    }

    static string Name(Verb verb) => verb.ToString().ToLowerInvariant();

    static CommandLine Fail(string error) => new(Verb.Help, [], error);
}
