using System.Diagnostics;
using System.Globalization;
using System.Net.Http;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using TinyGrow.Abstractions;

namespace TinyGrow.Datasets.Downloads;

/// <summary>
/// Downloads a dataset's published files once, for every dataset plugin (registered by the host and
/// injected into providers). A file appears under its final name only complete and verified: it is
/// written to "&lt;name&gt;.&lt;pid&gt;-&lt;guid&gt;.partial", checked against its published MD5, then renamed; a
/// failed or cancelled download leaves nothing, a killed one at most its ".partial" file, which the
/// next download of that file removes once it is older than two stall periods.
/// Progress is logged every few seconds (a daemon has no terminal to redraw), or reported to the
/// host's <see cref="IDownloadProgress"/> when it shows downloads itself (a live display on a terminal).
/// </summary>
public sealed class DatasetDownloader : IDisposable
{
    const int BufferSize = 1 << 20;

    readonly ILogger<DatasetDownloader> _log;
    readonly HttpClient _http;
    readonly TimeSpan _progressInterval;
    readonly IDownloadProgress? _progress;

    /// <param name="log">Receives progress and retries.</param>
    public DatasetDownloader(ILogger<DatasetDownloader> log) : this(log, TimeSpan.FromSeconds(5)) { }

    /// <param name="log">Receives retries and the start and end of each download.</param>
    /// <param name="progress">Receives the bytes received, after every read (no progress lines are logged).</param>
    public DatasetDownloader(ILogger<DatasetDownloader> log, IDownloadProgress progress) : this(log, TimeSpan.FromSeconds(5)) =>
        _progress = progress;

    /// <param name="log">Receives progress and retries.</param>
    /// <param name="progressInterval">Least time between two progress lines of one download.</param>
    public DatasetDownloader(ILogger<DatasetDownloader> log, TimeSpan progressInterval)
    {
        _log = log;
        _progressInterval = progressInterval;
        // The stall timeout (per read) replaces the whole-request timeout: a 160 MB archive on a slow
        // link may take longer than any fixed limit and still be progressing.
        _http = new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.UserAgent.ParseAdd("TinyGrow");
    }

    /// <summary>The addresses to try for a dataset: the mirror alone when one is configured (a
    /// closed network should not reach out elsewhere), else the official ones in order.</summary>
    public static IReadOnlyList<string> Addresses(DatasetOptions options, IReadOnlyList<string> official) =>
        string.IsNullOrWhiteSpace(options.Mirror) ? official : [options.Mirror];

    /// <summary>
    /// Returns the path of <paramref name="file"/> in <paramref name="folder"/>, downloading it from the
    /// first of <paramref name="addresses"/> that serves it when it is not there yet. A file already
    /// there is verified, never replaced: a mismatch is an error naming it.
    /// </summary>
    /// <exception cref="DatasetException">No address served the file with its checksum, or the file
    /// on disk does not match; the message names the file, the addresses and where to put it by hand.</exception>
    public string Fetch(RemoteFile file, IReadOnlyList<string> addresses, string folder, DatasetOptions options, CancellationToken cancellation)
    {
        var target = Path.Combine(folder, file.FileName);
        if (File.Exists(target))
        {
            VerifyExisting(file, target);
            return target;
        }
        if (!options.Download)
            throw new DatasetException($"{target} is missing and downloads are off (Dataset:Download=false). {ByHand(file, folder)}");

        var firstCreated = FirstMissing(Path.GetFullPath(folder));
        Directory.CreateDirectory(folder);
        var stall = TimeSpan.FromSeconds(options.DownloadStallSeconds);
        RemoveStalePartials(folder, file.FileName, stall);
        var failures = new List<string>();
        var fetched = false;
        try
        {
            foreach (var address in addresses)
            {
                try
                {
                    var uri = AddressOf(address, file.FileName);
                    Download(file, uri, target, stall, cancellation);
                    fetched = true;
                    return target;
                }
                // Network, disk and checksum failures move on to the next address; the caller's own
                // cancellation (Ctrl+C) ends the download as a cancellation, whatever it interrupted.
                catch (Exception e) when (e is HttpRequestException or IOException or DownloadException or OperationCanceledException
                                              or NotSupportedException or UriFormatException)
                {
                    cancellation.ThrowIfCancellationRequested();
                    var reason = e is OperationCanceledException ? $"stalled: no data for {options.DownloadStallSeconds} s" : e.Message;
                    _log.LogWarning("Download of {File} from {Address} failed: {Reason}", file.FileName, address, reason);
                    failures.Add($"{AddressText(address, file.FileName)}: {reason}");
                }
            }
        }
        finally
        {
            // Leave the disk as it was found: no empty folder suggesting that a dataset is there.
            if (!fetched && firstCreated is not null) RemoveEmptyFolders(Path.GetFullPath(folder), firstCreated);
        }
        throw new DatasetException(
            $"Could not download {file.FileName} ({string.Join("; ", failures)}). " +
            $"Without network access: {ByHand(file, folder)} With a copy of the files served over HTTP on your network: set Dataset:Mirror to its address.");
    }

    /// <summary>The outermost folder of <paramref name="folder"/>'s path that does not exist yet, or null.</summary>
    static string? FirstMissing(string folder)
    {
        string? missing = null;
        for (var f = folder; f is not null && !Directory.Exists(f); f = Path.GetDirectoryName(f)) missing = f;
        return missing;
    }

    static void RemoveEmptyFolders(string folder, string upTo)
    {
        for (var f = folder; f is not null && f.Length >= upTo.Length; f = Path.GetDirectoryName(f))
        {
            if (!Directory.Exists(f) || Directory.EnumerateFileSystemEntries(f).Any()) return;
            Directory.Delete(f);
        }
    }

    /// <summary>Partial files of <paramref name="fileName"/> left by a killed process: a live download
    /// writes at least once per stall period (or gives up), so one untouched for longer is dead.</summary>
    static void RemoveStalePartials(string folder, string fileName, TimeSpan stall)
    {
        foreach (var partial in Directory.EnumerateFiles(folder, fileName + ".*.partial"))
            if (DateTime.UtcNow - File.GetLastWriteTimeUtc(partial) > stall + stall)
                try { File.Delete(partial); } catch (IOException) { } // being removed by its owner
    }

    static string ByHand(RemoteFile file, string folder) =>
        $"Put {file.FileName} (MD5 {file.Md5}) in {folder}/ and run again.";

    static void VerifyExisting(RemoteFile file, string path)
    {
        var actual = RemoteFile.Md5Of(path);
        if (!file.Matches(actual))
            throw new DatasetException(
                $"{path} has MD5 {actual}, but the published {file.FileName} has {file.Md5}: the file is damaged or another version. Delete it to download it again.");
    }

    static Uri AddressOf(string baseAddress, string fileName)
    {
        var uri = new Uri(new Uri(AsFolder(baseAddress), UriKind.Absolute), Uri.EscapeDataString(fileName));
        if (uri.Scheme is not ("http" or "https"))
            throw new NotSupportedException($"only http and https addresses are supported, not {uri.Scheme}");
        return uri;
    }

    static string AsFolder(string baseAddress) => baseAddress.EndsWith('/') ? baseAddress : baseAddress + "/";

    static string AddressText(string baseAddress, string fileName) => AsFolder(baseAddress) + fileName;

    void Download(RemoteFile file, Uri uri, string target, TimeSpan stall, CancellationToken cancellation)
    {
        // A name of its own: two runs downloading the same file into the same folder do not write
        // into (or delete) each other's partial file.
        var partial = $"{target}.{Environment.ProcessId}-{Guid.NewGuid():N}.partial";
        try
        {
            _log.LogInformation("Downloading {File} from {Address}", file.FileName, uri);
            using var stalled = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
            stalled.CancelAfter(stall);
            using var request = new HttpRequestMessage(HttpMethod.Get, uri);
            using var response = _http.Send(request, HttpCompletionOption.ResponseHeadersRead, stalled.Token);
            if (!response.IsSuccessStatusCode)
                throw new DownloadException($"HTTP {(int)response.StatusCode} {response.ReasonPhrase}");
            var length = response.Content.Headers.ContentLength;
            using var md5 = IncrementalHash.CreateHash(HashAlgorithmName.MD5);
            long received = 0;
            using (var body = response.Content.ReadAsStream(stalled.Token))
            using (var output = new FileStream(partial, FileMode.Create, FileAccess.Write, FileShare.None, BufferSize))
            {
                var buffer = new byte[BufferSize];
                var clock = Stopwatch.StartNew();
                var lastReport = TimeSpan.Zero;
                while (true)
                {
                    stalled.CancelAfter(stall);
                    var read = body.ReadAsync(buffer, stalled.Token).AsTask().GetAwaiter().GetResult();
                    if (read == 0) break;
                    output.Write(buffer, 0, read);
                    md5.AppendData(buffer, 0, read);
                    received += read;
                    _progress?.Download(file.FileName, received, length, done: false);
                    if (_progress is null && clock.Elapsed - lastReport >= _progressInterval)
                    {
                        lastReport = clock.Elapsed;
                        _log.LogInformation("{File}: {Progress}", file.FileName, Progress(received, length, clock.Elapsed));
                    }
                }
            }
            if (length is { } expected && received != expected)
                throw new DownloadException($"the connection ended after {received} of {expected} bytes");
            var actual = Convert.ToHexStringLower(md5.GetHashAndReset());
            if (!file.Matches(actual))
                throw new DownloadException($"the file received ({received} bytes) has MD5 {actual}, not the published {file.Md5}");
            try
            {
                File.Move(partial, target);
            }
            catch (IOException) when (File.Exists(target))
            {
                // Another run finished first: use its file if it is the published one.
                VerifyExisting(file, target);
            }
            _progress?.Download(file.FileName, received, length, done: true);
            _log.LogInformation("Downloaded {File} ({Megabytes:f1} MB), MD5 verified", file.FileName, received / 1e6);
        }
        finally
        {
            // Nothing half-written survives under any name but "*.partial", and not even that
            // unless the process was killed (the next download of the file removes it).
            if (File.Exists(partial)) File.Delete(partial);
        }
    }

    static string Progress(long received, long? length, TimeSpan elapsed)
    {
        var rate = received / 1e6 / Math.Max(elapsed.TotalSeconds, 1e-3);
        return length is { } total and > 0
            ? string.Create(CultureInfo.InvariantCulture, $"{received / 1e6:f1} of {total / 1e6:f1} MB ({100.0 * received / total:f0} %), {rate:f1} MB/s")
            : string.Create(CultureInfo.InvariantCulture, $"{received / 1e6:f1} MB, {rate:f1} MB/s");
    }

    /// <inheritdoc />
    public void Dispose() => _http.Dispose();

    /// <summary>A server answered but not with the file.</summary>
    sealed class DownloadException(string message) : Exception(message);
}
