/// The plain way to show a run's progress (a daemon's job, CI, a pipe): a log line every `interval`
/// while an epoch trains. Epoch ends and growth steps are logged by the engine itself, in every mode.
namespace TinyGrow.Core

open System
open System.Diagnostics
open Microsoft.Extensions.Logging
open TinyGrow.Abstractions

type ProgressLog(logger: ILogger, interval: TimeSpan) =
    let mutable last = Stopwatch.StartNew ()

    /// A line every 15 seconds, the engine's default.
    new(logger: ILogger) = ProgressLog (logger, TimeSpan.FromSeconds 15.0)

    interface IRunProgress with
        member _.Started(_, _, _, _, _) = last <- Stopwatch.StartNew ()
        member _.Batch(epoch, batch, batches, meanLoss) =
            if last.Elapsed >= interval then
                logger.LogInformation ("epoch {Epoch} batch {Batch}/{Batches}, loss {Loss:f4}", epoch, batch, batches, meanLoss)
                last <- Stopwatch.StartNew ()
        member _.Growing(_, _) = ()
        member _.Grown(_, _, _, _) = ()
        member _.Epoch(_, _, _, _, _) = ()
