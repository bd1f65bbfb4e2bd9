namespace TinyGrow.Host.Configuration;

/// <summary>Configuration that cannot be used: the message names the file or key and the fix.
/// The host reports it as one line and exits with <see cref="ExitCodes.BadConfiguration"/>.</summary>
public sealed class InvalidConfigurationException(string message, Exception? inner = null) : Exception(message, inner);
