// tinygrow: grows neural networks while they train. This file only wires: configuration, options,
// plugins, then the verb runs in the foreground and its result is the exit code (a
// BackgroundService would turn a failure into exit code 0). Every exit is one of ExitCodes: what
// escapes a verb is reported and mapped by Failure.
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using TinyGrow.Host;
using TinyGrow.Host.Commands;
using TinyGrow.Host.Configuration;
using TinyGrow.Host.Daemon;
using TinyGrow.Host.Plugins;
using TinyGrow.Host.Progress;

var commandLine = CommandLine.Parse(args);
if (commandLine.Error is not null)
{
    Console.Error.WriteLine($"tinygrow: {commandLine.Error}\n");
    Usage.Write(Console.Error);
    return ExitCodes.BadConfiguration;
}
if (commandLine.Verb == Verb.Help) { Usage.Write(Console.Out); return ExitCodes.Ok; }
// report and export need no host; what escapes them is still mapped to an exit code, not the runtime's abort (134).
try
{
    if (commandLine.Verb == Verb.Report) return ReportCommand.Execute(commandLine.Argument!, Console.Out, Console.Error);
    if (commandLine.Verb == Verb.Export) return ExportCommand.Execute(commandLine.Argument!, Console.Out, Console.Error);
}
catch (Exception e)
{
    return Failure.Report(e, null, Console.Error);
}
if (commandLine.Verb == Verb.Resume && RunCommand.ResumeProblem(commandLine.Argument!) is { } notResumable)
{
    Console.Error.WriteLine($"tinygrow: {notResumable}");
    return ExitCodes.BadConfiguration;
}

RunCommand? run = null; // names the run folder, once claimed, in the report of an unexpected error
// An exception on another thread would abort the process (exit 134, a bare trace): report it the
// same way and exit with its code (checked by hand: Environment.Exit here does end the process so).
AppDomain.CurrentDomain.UnhandledException += (_, e) => Environment.Exit(
    Failure.Report(e.ExceptionObject as Exception ?? new Exception($"{e.ExceptionObject}"), run?.Folder, Console.Error));
try
{
    var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
    {
        DisableDefaults = true, // no reload-on-change watchers, no unprefixed environment
        ContentRootPath = AppContext.BaseDirectory,
    });
    TinyGrowSettings settings;
    try
    {
        builder.Configuration.AddTinyGrowLayers(AppContext.BaseDirectory, commandLine.ConfigurationArguments, Environment.CurrentDirectory);
        settings = TinyGrowSettings.Bind(builder.Configuration);
    }
    catch (InvalidConfigurationException e)
    {
        foreach (var line in e.Message.Split(Environment.NewLine))
            Console.Error.WriteLine($"tinygrow: {line}");
        return ExitCodes.BadConfiguration;
    }

    // A live display on a terminal, or log lines: never both on one screen. With the display, log
    // lines go through its console (above it), and it shows the downloads the downloader would log.
    var live = ProgressDisplay.Choose(settings.Output.Progress, commandLine.Verb, Console.IsOutputRedirected, Console.IsErrorRedirected,
        Environment.GetEnvironmentVariable("TERM")) == ProgressMode.Live ? new LiveProgress(Spectre.Console.AnsiConsole.Console) : null;
    builder.Logging.AddConfiguration(builder.Configuration.GetSection("Logging"));
    if (live is null) builder.Logging.AddConsole();
    else
    {
        builder.Logging.AddProvider(new LiveConsoleLoggerProvider(live));
        builder.Services.AddSingleton<TinyGrow.Abstractions.IRunProgress>(live).AddSingleton<TinyGrow.Abstractions.IDownloadProgress>(live);
    }
    builder.Services.Configure<ConsoleLifetimeOptions>(o => o.SuppressStatusMessages = true);
    builder.Services.AddSystemd(); // active only when started by systemd (Type=notify)
    builder.Services.AddTinyGrowSettings(settings).AddSingleton(TimeProvider.System);
    var discovery = builder.Services.AddTinyGrowPlugins(
        PluginDiscovery.SearchFolders(AppContext.BaseDirectory, settings.Plugins.Folders, Environment.CurrentDirectory));
    builder.Services.AddSingleton<RunCommand>().AddSingleton<PluginsCommand>();
    if (commandLine.Verb is Verb.Daemon or Verb.Submit or Verb.Jobs)
    {
        if (SettingsValidator.Validate(settings) is { Count: > 0 } problems)
        {
            foreach (var problem in problems) Console.Error.WriteLine($"tinygrow: {problem}");
            return ExitCodes.BadConfiguration;
        }
        // Listing must not create the queue folder (FolderJobQueue creates its folders) where there is none.
        if (commandLine.Verb == Verb.Jobs && settings.Daemon.Queue != DaemonOptions.PostgresQueue && !Directory.Exists(settings.Daemon.QueueFolder)
            && !File.Exists(settings.Daemon.QueueFolder))
        {
            Console.Out.WriteLine($"no jobs: there is no queue at {Path.GetFullPath(settings.Daemon.QueueFolder)} (tinygrow submit <experiment.json> creates it; Daemon:QueueFolder names it)");
            return ExitCodes.Ok;
        }
        builder.Services.AddSingleton<IJobQueue>(s => settings.Daemon.Queue == DaemonOptions.PostgresQueue
            ? new PostgresJobQueue(settings.Daemon.ConnectionString, settings.Daemon.QueueFolder,
                TimeSpan.FromSeconds(settings.Daemon.LeaseSeconds), s.GetRequiredService<ILogger<PostgresJobQueue>>())
            : new FolderJobQueue(settings.Daemon.QueueFolder));
    }
    if (commandLine.Verb is Verb.Run or Verb.Resume) ParentWatch.StartIfDaemonChild();
    if (commandLine.Verb == Verb.Daemon)
    {
        builder.Services.AddSingleton<JobRunner>(s => new JobRunner(settings, s.GetRequiredService<ILogger<JobRunner>>()));
        builder.Services.AddSingleton<DaemonService>().AddHostedService(s => s.GetRequiredService<DaemonService>());
        // Room for the running job to stop on SIGTERM (it goes back to the queue) before the host gives up.
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = JobRunner.StopGrace + TimeSpan.FromSeconds(10));
    }

    using var host = builder.Build();
    var log = host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("TinyGrow.Host");
    discovery.LogProblems(log);
    // Connects now: an unreachable queue server or refused credentials end the command (exit 2) here.
    if (commandLine.Verb is Verb.Daemon or Verb.Submit or Verb.Jobs) host.Services.GetRequiredService<IJobQueue>();

    StopSignal.Listen();
    await host.StartAsync(); // Ctrl-C / SIGTERM now cancel ApplicationStopping
    var stopping = host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
    // The display stops (its last state left on screen) when this block is left, before an error is reported.
    await using var display = live?.Start();
    var exitCode = commandLine.Verb switch
    {
        Verb.Plugins => host.Services.GetRequiredService<PluginsCommand>().Execute(Console.Out),
        Verb.Submit => QueueCommands.Submit(host.Services.GetRequiredService<IJobQueue>(), commandLine.Argument!, Console.Out, Console.Error,
            host.Services.GetService<PluginCatalogue>()),
        Verb.Jobs => QueueCommands.Jobs(host.Services.GetRequiredService<IJobQueue>(), Console.Out),
        Verb.Daemon => await UntilStopped(stopping),
        Verb.Resume => await (run = host.Services.GetRequiredService<RunCommand>()).ResumeAsync(commandLine.Argument!, stopping),
        _ => await (run = host.Services.GetRequiredService<RunCommand>()).ExecuteAsync(stopping),
    };
    // A daemon still stops its running job below; a run's outcome is decided.
    if (commandLine.Verb != Verb.Daemon) StopSignal.Finished();
    await host.StopAsync(); // the daemon's running job is asked to stop and requeued
    StopSignal.Finished();
    // A failed BackgroundService stops the host, which would still exit 0: take the code from it.
    if (commandLine.Verb == Verb.Daemon && host.Services.GetRequiredService<DaemonService>().ExecuteTask is { IsFaulted: true } failed)
        return Failure.Report(failed.Exception!.GetBaseException(), null, Console.Error);
    return exitCode;
}
catch (Exception e)
{
    return Failure.Report(e, run?.Folder, Console.Error);
}

// The daemon works in its BackgroundService until SIGTERM / Ctrl-C, or until it fails (which stops the host).
static async Task<int> UntilStopped(CancellationToken stopping)
{
    try { await Task.Delay(Timeout.Infinite, stopping); }
    catch (OperationCanceledException) { }
    return ExitCodes.Ok;
}
