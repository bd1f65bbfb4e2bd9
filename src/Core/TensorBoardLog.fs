/// TensorBoard scalars of a run (`<run>/tensorboard/`), with TorchSharp's SummaryWriter: the same
/// numbers as metrics.jsonl, for `tensorboard --logdir runs`. The writer appends each event to
/// its file as it is added: nothing to flush or close.
namespace TinyGrow.Core

open System
open System.IO
open TorchSharp

type TensorBoardLog(runDirectory: string) =
    let writer = torch.utils.tensorboard.SummaryWriter (Path.Combine (runDirectory, "tensorboard"))
    let mutable growthStep = 0

    /// Growth steps already logged (a resumed run continues their numbering).
    member _.GrowthSteps with get () = growthStep and set v = growthStep <- v

    member _.Epoch(epoch: int, trainLoss: float, testLoss: float, testAccuracy: float, parameters: int64, widths: int[]) =
        writer.add_scalar ("loss/train", float32 trainLoss, epoch)
        writer.add_scalar ("loss/test", float32 testLoss, epoch)
        writer.add_scalar ("accuracy/test", float32 testAccuracy, epoch)
        writer.add_scalar ("network/parameters", float32 parameters, epoch)
        widths |> Array.iteri (fun i w -> writer.add_scalar ($"network/width_{i}", float32 w, epoch))

    /// One growth step's events, at a running growth-step index.
    member _.Growth(events: GammaSearch.GrowthEvent list) =
        growthStep <- growthStep + 1
        for e in events do
            let tag (name: string) = $"growth/junction_{e.Junction}/{name}"
            writer.add_scalar (tag "added", float32 e.Added, growthStep)
            writer.add_scalar (tag "gamma", float32 e.Gamma, growthStep)
            writer.add_scalar (tag "predicted_decrease", float32 e.PredictedDecrease, growthStep)
            writer.add_scalar (tag "measured_decrease", float32 e.MeasuredDecrease, growthStep)
            writer.add_scalar (tag "bottleneck", float32 e.Bottleneck, growthStep)
