using System.Globalization;
using Microsoft.Extensions.Logging;
using Spectre.Console;

namespace TinyGrow.Host.Progress;

/// <summary>
/// The console logger while a live display runs: each line is handed to the display, which writes
/// it above itself instead of across it. Lines look like the plain console logger's
/// ("HH:mm:ss info: Category[0] message"); levels are filtered by the Logging section as for any provider.
/// </summary>
public sealed class LiveConsoleLoggerProvider(LiveProgress display) : ILoggerProvider
{

    /// <inheritdoc />
    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    /// <inheritdoc />
    public void Dispose() { }

    void Write(LogLevel level, string category, EventId id, string message, Exception? exception)
    {
        var (name, colour) = level switch
        {
            LogLevel.Trace => ("trce", "grey"),
            LogLevel.Debug => ("dbug", "grey"),
            LogLevel.Information => ("info", "green"),
            LogLevel.Warning => ("warn", "yellow"),
            LogLevel.Error => ("fail", "red"),
            _ => ("crit", "red"),
        };
        var line = $"{DateTime.Now.ToString("HH:mm:ss", CultureInfo.InvariantCulture)} [{colour}]{name}[/]: " +
                   Markup.Escape($"{category}[{id.Id}] {message}{(exception is null ? "" : Environment.NewLine + exception)}");
        display.WriteLine(line);
    }

    sealed class Logger(LiveConsoleLoggerProvider provider, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel)) provider.Write(logLevel, category, eventId, formatter(state, exception), exception);
        }
    }
}
