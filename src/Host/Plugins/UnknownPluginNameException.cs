namespace TinyGrow.Host.Plugins;

/// <summary>No plugin serves a requested name; the message lists the names available and where
/// plugins are searched.</summary>
public sealed class UnknownPluginNameException(string message) : Exception(message);
