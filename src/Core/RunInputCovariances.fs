/// The input covariances of a run (S2 and whitening of each junction whose A reads the network's input),
/// computed once, at the first growth step that needs them, from the input statistics cache when it holds
/// them (InputStatisticsCache), and logged (not in metrics.jsonl, which a resumed run must write as an
/// uninterrupted one). Disposing waits for the cache entries still being written in the background.
namespace TinyGrow.Core

open System
open System.Collections.Generic
open Microsoft.Extensions.Logging
open TorchSharp
open TinyGrow.Abstractions

module InputCovariances =
    /// S2 and whitening of each junction whose A reads the network's input, once per run on the first
    /// InputStatisticsSamples (default 2·StatisticsSamples) training samples: its S2 depends only on the data (DESIGN §4.5); the
    /// statistics pass then skips it. The augmentation and row draws come from generators of fixed
    /// seeds, not the run's: a resumed run computes the same one, and so does a run with another seed,
    /// so that one entry of the input statistics cache (InputStatisticsCache, in `cacheFolder`) serves
    /// every run on the dataset. With each junction's key and how its entry was obtained.
    let compute (logger: ILogger) (cacheFolder: string | null) (net: Network) (growth: GrowthOptions) (data: LoadedDataset) =
        use scope = torch.NewDisposeScope ()
        let wanted = if growth.InputStatisticsSamples > 0 then int64 growth.InputStatisticsSamples else 2L * int64 growth.StatisticsSamples
        let count = min wanted data.Train.Count
        use idx = torch.arange (count, device = data.Train.Labels.device)
        // Statistics from training batches see the inputs as trained on: augmented, when the dataset augments.
        use augmentation = new torch.Generator (0x2545F4914F6CDD1DUL)
        let augmented : torch.Generator | null = if growth.StatisticsFrom = "training" then augmentation else null
        let x, y = Training.select data data.Train idx augmented
        use rows = new torch.Generator (0x9E3779B97F4A7C15UL)
        let cache = Dictionary<int, InputWhitening.InputCovariance> ()
        let outcomes = ResizeArray<int * InputStatisticsCache.Key * InputStatisticsCache.Outcome> ()
        let warn (message: string) = logger.LogWarning ("{Warning}", message)
        for j in InputWhitening.readsInput net x do
            // Without a cache folder the inputs are not hashed; a key that cannot be formed costs the cache, not the run.
            let key, (folder: string | null) =
                match cacheFolder with
                | null -> InputStatisticsCache.noKey, null
                | f ->
                    try InputStatisticsCache.keyOf net j growth x, f
                    with e when not (e :? OperationCanceledException || e :? OutOfMemoryException) ->
                        warn $"The input statistics cache is not used for junction {j}: its key could not be formed ({e.Message})."
                        InputStatisticsCache.noKey, null
            let c, outcome =
                InputStatisticsCache.getOrCompute folder key x warn true (fun () -> InputWhitening.inputCovariance net j growth rows x y)
            cache[j] <- { c with S2 = c.S2.DetachFromDisposeScope (); Whitening = c.Whitening.DetachFromDisposeScope () }
            outcomes.Add ((j, key, outcome))
        cache, List.ofSeq outcomes

/// A run's input covariances (see InputCovariances.compute): `Whitenings` computes them the first time it is
/// read; `cacheFolder` null: no cache, computed by every run.
type RunInputCovariances(logger: ILogger, cacheFolder: string | null, net: Network, growth: GrowthOptions, data: LoadedDataset) =
    // Input statistics cache entries being written (InputStatisticsCache.Writing): waited for on Dispose.
    let pendingWrites = ResizeArray<string * Threading.Tasks.Task<float>> ()
    let whitenings =
        lazy (
            let cache, outcomes = InputCovariances.compute logger cacheFolder net growth data
            for j, key, outcome in outcomes do
                let c = cache[j]
                match outcome with
                | InputStatisticsCache.Hit (file, seconds) ->
                    logger.LogInformation ("Input covariance of junction {Junction} (kept for the run): read from the cache {File} in {Read:f2} s (inputs hashed in {Hash:f2} s); computed there from {Samples} samples by {Path} in {Statistics:f2} + {Factor:f2} s",
                                           j, file, seconds, key.Seconds, c.Samples, c.Path, c.StatisticsSeconds, c.FactorSeconds)
                | InputStatisticsCache.Computed (file, seconds) ->
                    logger.LogInformation ("Input covariance of junction {Junction} (kept for the run): S2 on {Samples} samples in {Statistics:f2} s, whitening by {Path} in {Factor:f2} s; written to the cache {File} in {Write:f2} s (inputs hashed in {Hash:f2} s)",
                                           j, c.Samples, c.StatisticsSeconds, c.Path, c.FactorSeconds, file, seconds, key.Seconds)
                | InputStatisticsCache.Writing (file, seconds, writing) ->
                    pendingWrites.Add (file, writing)
                    logger.LogInformation ("Input covariance of junction {Junction} (kept for the run): S2 on {Samples} samples in {Statistics:f2} s, whitening by {Path} in {Factor:f2} s; being written to the cache {File} in the background (copied for it in {Copy:f2} s; inputs hashed in {Hash:f2} s)",
                                           j, c.Samples, c.StatisticsSeconds, c.Path, c.FactorSeconds, file, seconds, key.Seconds)
                | InputStatisticsCache.NotKept why ->
                    logger.LogInformation ("Input covariance of junction {Junction} (kept for the run): S2 on {Samples} samples in {Statistics:f2} s, whitening by {Path} in {Factor:f2} s; not cached ({Why})",
                                           j, c.Samples, c.StatisticsSeconds, c.Path, c.FactorSeconds, why)
            cache)

    /// Junction → its input covariance, for the junctions that read the network's input.
    member _.Whitenings : Lazy<Dictionary<int, InputWhitening.InputCovariance>> = whitenings

    interface IDisposable with
        member _.Dispose () =
            // The writes report their own failures (a warning) and never throw.
            for file, writing in pendingWrites do
                let seconds = writing.Result
                if not (Double.IsNaN seconds) then
                    logger.LogInformation ("Input statistics cache entry {File} written in the background in {Seconds:f2} s", file, seconds)
            if whitenings.IsValueCreated then for c in whitenings.Value.Values do (c :> IDisposable).Dispose ()
