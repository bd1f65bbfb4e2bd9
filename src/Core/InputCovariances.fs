/// The input covariances of a run: S2 and whitening of each junction whose A reads the network's input
/// (DESIGN §4.5), from the input statistics cache when it holds them (InputStatisticsCache).
module TinyGrow.Core.InputCovariances

open System
open System.Collections.Generic
open System.Threading
open Microsoft.Extensions.Logging
open TorchSharp
open TinyGrow.Abstractions

/// Each junction's input covariance, and its key and how its entry was obtained.
type Computed =
    { Covariances: Dictionary<int, InputWhitening.InputCovariance>
      Outcomes: (int * InputStatisticsCache.Key * InputStatisticsCache.Outcome) list }

/// The samples the input covariances are computed on (x, y, in the caller's dispose scope): the first
/// InputStatisticsSamples (default 2·StatisticsSamples) training samples. Augmented, with Growth:StatisticsFrom
/// = "training" (statistics from training batches see the inputs as trained on), by a generator of a fixed
/// seed, not the run's: a resumed run computes the same, and so does a run with another seed, so that one
/// entry of the input statistics cache serves every run on the dataset.
let samples (growth: GrowthOptions) (data: LoadedDataset) : torch.Tensor * torch.Tensor =
    let wanted = if growth.InputStatisticsSamples > 0 then int64 growth.InputStatisticsSamples else 2L * int64 growth.StatisticsSamples
    let count = min wanted data.Train.Count
    use idx = torch.arange (count, device = data.Train.Labels.device)
    use augmentation = new torch.Generator (0x2545F4914F6CDD1DUL)
    let augmented : torch.Generator | null = if growth.StatisticsFrom = "training" then augmentation else null
    Training.select data data.Train idx augmented

/// S2 and whitening of each of `junctions` (those of `net` whose A reads the network's input:
/// InputWhitening.readsInput), on the samples (x, y): S2 depends only on the data, so `net` may be any
/// network of the run's plan, at any widths, with any weights. The row draws come from a generator of a fixed seed (see `samples`). What is computed is kept
/// in the cache as `store` says (InputStatisticsCache.Store). `stop` is checked before each junction.
let computeOn (logger: ILogger) (cacheFolder: string | null) (store: InputStatisticsCache.Store) (net: Network) (junctions: int seq)
              (growth: GrowthOptions) (x: torch.Tensor) (y: torch.Tensor) (stop: CancellationToken) : Computed =
    use scope = torch.NewDisposeScope ()
    use rows = new torch.Generator (0x9E3779B97F4A7C15UL)
    let cache = Dictionary<int, InputWhitening.InputCovariance> ()
    let outcomes = ResizeArray<int * InputStatisticsCache.Key * InputStatisticsCache.Outcome> ()
    let warn (message: string) = logger.LogWarning ("{Warning}", message)
    try
        for j in junctions do
            stop.ThrowIfCancellationRequested ()
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
                InputStatisticsCache.getOrCompute folder key x warn store (fun () -> InputWhitening.inputCovariance net j growth rows x y)
            cache[j] <- { c with S2 = c.S2.DetachFromDisposeScope (); Whitening = c.Whitening.DetachFromDisposeScope () }
            outcomes.Add ((j, key, outcome))
    with _ ->
        for c in cache.Values do (c :> IDisposable).Dispose ()
        for _, _, outcome in outcomes do InputStatisticsCache.discard outcome
        reraise ()
    { Covariances = cache; Outcomes = List.ofSeq outcomes }

/// computeOn the run's network and samples, on the calling thread; cache entries written in the background.
let compute (logger: ILogger) (cacheFolder: string | null) (net: Network) (growth: GrowthOptions) (data: LoadedDataset) : Computed =
    use scope = torch.NewDisposeScope ()
    let x, y = samples growth data
    computeOn logger cacheFolder InputStatisticsCache.Background net (InputWhitening.readsInput net x) growth x y CancellationToken.None
