/// The growth engine's entry point for the host: train, grow at the scheduled points, write the
/// run's outputs (metrics.jsonl, model) into the run folder.
namespace TinyGrow.Core

open System.Collections.Generic
open System.Threading
open Microsoft.Extensions.Logging
open TorchSharp
open TinyGrow.Abstractions

/// What a finished run reports (also the `final` line of metrics.jsonl).
type RunSummary =
    { TestAccuracy: float
      Parameters: int64
      Widths: int[]
      Seconds: float }

/// `strategy` may be null: the network then trains at its starting widths (a fixed baseline).
type GrowthEngine(layerKinds: IReadOnlyDictionary<string, ILayerKind>, strategy: IGrowthStrategy, logger: ILogger) =
    member _.Run
        (
            data: LoadedDataset,
            model: ModelOptions,
            training: TrainingOptions,
            growth: GrowthOptions,
            device: torch.Device,
            runDirectory: string,
            cancellation: CancellationToken
        ) : RunSummary =
        failwith "under construction"
