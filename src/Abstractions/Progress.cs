namespace TinyGrow.Abstractions;

/// <summary>
/// What a run reports while it trains, for the host to show: a live display on a terminal, a log
/// line every few seconds elsewhere. The engine calls it on its training thread; an implementation
/// returns at once (it records, it does not draw) and does not throw.
/// </summary>
public interface IRunProgress
{
    /// <summary>Training starts, or resumes at <paramref name="epoch"/> (1-based) before batch
    /// <paramref name="batch"/> (0-based), with the network at <paramref name="widths"/>.</summary>
    void Started(int epochs, int batchesPerEpoch, int epoch, int batch, IReadOnlyList<int> widths);

    /// <summary>Batch <paramref name="batch"/> (1-based) of <paramref name="batches"/> in
    /// <paramref name="epoch"/> is trained; <paramref name="meanLoss"/> is the epoch's mean training loss so far.</summary>
    void Batch(int epoch, int batch, int batches, double meanLoss);

    /// <summary>Growth step <paramref name="step"/> (0-based in the run) begins.</summary>
    void Growing(int epoch, int step);

    /// <summary>Growth step <paramref name="step"/> added <paramref name="added"/> neurons at
    /// <paramref name="junction"/> (0 when a proposal was refused); the network is now at <paramref name="widths"/>.</summary>
    void Grown(int step, int junction, int added, IReadOnlyList<int> widths);

    /// <summary>An epoch ended with these losses and test accuracy.</summary>
    void Epoch(int epoch, int epochs, double trainLoss, double testAccuracy, IReadOnlyList<int> widths);
}

/// <summary>A dataset file being downloaded, reported after every read by the host's downloader when
/// the host shows downloads itself (a live display); without one the downloader logs its progress.</summary>
public interface IDownloadProgress
{
    /// <summary><paramref name="received"/> bytes of <paramref name="file"/> so far, of
    /// <paramref name="total"/> when the server said; <paramref name="done"/> once the file is complete.</summary>
    void Download(string file, long received, long? total, bool done);
}
