/// The input covariances of a run (InputCovariances), computed once, at the first growth step that needs
/// them, or taken from a computation started ahead (InputCovariancesAhead), and logged (not in
/// metrics.jsonl, which a resumed run must write as an uninterrupted one). Disposing waits for the cache
/// entries still being written in the background.
namespace TinyGrow.Core

open System
open System.Collections.Generic
open System.Threading
open Microsoft.Extensions.Logging
open TinyGrow.Abstractions

/// A run's input covariances: `Whitenings` computes them (or takes them from `ahead`, which it then owns)
/// the first time it is read; `cacheFolder` null: no cache, computed by every run. `stopping`: the run's
/// stop token, which ends a wait for `ahead`.
type RunInputCovariances(logger: ILogger, cacheFolder: string | null, net: Network, growth: GrowthOptions, data: LoadedDataset,
                         ahead: InputCovariancesAhead option, stopping: CancellationToken) =
    // Input statistics cache entries being written (InputStatisticsCache.Writing): waited for on Dispose.
    let pendingWrites = ResizeArray<string * Threading.Tasks.Task<float>> ()
    let warn (message: string) = logger.LogWarning ("{Warning}", message)
    let whitenings =
        lazy (
            let computed, how =
                match ahead with
                | Some a ->
                    let result, waited = a.Take stopping
                    logger.LogInformation ("Input covariances computed ahead on {Threads} spare CPU thread(s) in {Seconds:f2} s, from the moment the dataset was loaded; the first growth step waited {Waited:f2} s for them",
                                           result.Threads, result.Seconds, waited)
                    result.Computed, "computed ahead: "
                | None -> InputCovariances.compute logger cacheFolder net growth data, ""
            // Junctions whose copy for the cache write went to its write (which then owns it).
            let handedOver = HashSet<int> ()
            try
              for j, key, outcome in computed.Outcomes do
                  let c = computed.Covariances[j]
                  // Computed ahead, before the run was sure to start (its folder claimed): kept in the cache now.
                  let outcome =
                      match outcome with
                      | InputStatisticsCache.Unstored (folder, copy) ->
                          handedOver.Add j |> ignore
                          InputStatisticsCache.writeCopy folder key copy warn 0.0
                      | other -> other
                  match outcome with
                  | InputStatisticsCache.Hit (file, seconds) ->
                      logger.LogInformation ("Input covariance of junction {Junction} (kept for the run): {How}read from the cache {File} in {Read:f2} s (inputs hashed in {Hash:f2} s); computed there from {Samples} samples by {Path} in {Statistics:f2} + {Factor:f2} s",
                                             j, how, file, seconds, key.Seconds, c.Samples, c.Path, c.StatisticsSeconds, c.FactorSeconds)
                  | InputStatisticsCache.Computed (file, seconds) ->
                      logger.LogInformation ("Input covariance of junction {Junction} (kept for the run): {How}S2 on {Samples} samples in {Statistics:f2} s, whitening by {Path} in {Factor:f2} s; written to the cache {File} in {Write:f2} s (inputs hashed in {Hash:f2} s)",
                                             j, how, c.Samples, c.StatisticsSeconds, c.Path, c.FactorSeconds, file, seconds, key.Seconds)
                  | InputStatisticsCache.Writing (file, seconds, writing) ->
                      pendingWrites.Add (file, writing)
                      logger.LogInformation ("Input covariance of junction {Junction} (kept for the run): {How}S2 on {Samples} samples in {Statistics:f2} s, whitening by {Path} in {Factor:f2} s; being written to the cache {File} in the background (copied for it in {Copy:f2} s; inputs hashed in {Hash:f2} s)",
                                             j, how, c.Samples, c.StatisticsSeconds, c.Path, c.FactorSeconds, file, seconds, key.Seconds)
                  | InputStatisticsCache.NotKept why ->
                      logger.LogInformation ("Input covariance of junction {Junction} (kept for the run): {How}S2 on {Samples} samples in {Statistics:f2} s, whitening by {Path} in {Factor:f2} s; not cached ({Why})",
                                             j, how, c.Samples, c.StatisticsSeconds, c.Path, c.FactorSeconds, why)
                  | InputStatisticsCache.Unstored _ -> invalidOp "an entry computed ahead is written when taken (above)"
              computed.Covariances
            with _ ->
                // Taken, then not handed over: ours to release (the writes already started own their copies).
                for c in computed.Covariances.Values do (c :> IDisposable).Dispose ()
                for j, _, outcome in computed.Outcomes do if not (handedOver.Contains j) then InputStatisticsCache.discard outcome
                reraise ())

    /// Junction → its input covariance, for the junctions that read the network's input.
    member _.Whitenings : Lazy<Dictionary<int, InputWhitening.InputCovariance>> = whitenings

    /// Whether junction j reads the network's input (Whitenings then has it): with a computation ahead, from the
    /// set it was started with (Whitenings is not waited for); otherwise from Whitenings, computed now.
    member _.ReadsInput (j: int) =
        match ahead with
        | Some a -> a.Junctions.Contains j
        | None -> whitenings.Value.ContainsKey j

    interface IDisposable with
        member _.Dispose () =
            // A computation ahead that the run never took (it ended before growing) ends here.
            ahead |> Option.iter (fun a -> (a :> IDisposable).Dispose ())
            // The writes report their own failures (a warning) and never throw.
            for file, writing in pendingWrites do
                let seconds = writing.Result
                if not (Double.IsNaN seconds) then
                    logger.LogInformation ("Input statistics cache entry {File} written in the background in {Seconds:f2} s", file, seconds)
            if whitenings.IsValueCreated then for c in whitenings.Value.Values do (c :> IDisposable).Dispose ()
