namespace TinyGrow.Host.Daemon;

/// <summary>The queue's server cannot be reached or refuses the connection (bad credentials, no
/// such database). The message names the host, port, database and user, never the password. At
/// start (<c>daemon</c>, <c>submit</c>, <c>jobs</c>) it ends the command with exit 2; a running
/// daemon logs it and tries again after its poll interval.</summary>
public sealed class QueueUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
