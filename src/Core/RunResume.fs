/// What a resumed run takes from its checkpoint, in the order the file holds it.
module TinyGrow.Core.RunResume

open System
open TorchSharp
open TinyGrow.Abstractions

/// The network at the checkpoint's widths, with its weights and buffers.
let network blockKinds layerKinds (data: LoadedDataset) (device: torch.Device) (r: Checkpoint.Reader) =
    let h = r.Header
    if h.InputShape <> data.InputShape || h.Classes <> data.Classes then
        invalidOp $"{r.Path} was written for inputs {String.Join ('×', h.InputShape)} and {h.Classes} classes; {data.Name} has {String.Join ('×', data.InputShape)} and {data.Classes}."
    if h.Order <> 0L && h.Order <> data.Train.Count then
        invalidOp $"{r.Path} was written for a training split of {h.Order} samples; {data.Name} has {data.Train.Count}."
    let net = Network.BuildBlocks (blockKinds, layerKinds, h.Blocks, h.InputShape, h.Classes, device, torch.ScalarType.Float32, null)
    try
        r.LoadNetwork net
        net
    with _ ->
        (net :> IDisposable).Dispose ()
        reraise ()

/// Optimizer state, generator states and the epoch's permutation; returns the schedule position
/// (also given to `progress`) and the permutation (null between epochs).
let rest (r: Checkpoint.Reader) (net: Network) (optimizer: IOptimizer) (generators: torch.Generator[]) (device: torch.Device) (progress: RunProgress) =
    r.LoadOptimizer (net, optimizer)
    r.LoadGenerators generators
    let order = r.LoadOrder device
    let state = r.Header.State
    progress.Epoch <- state.Epoch
    progress.Batch <- state.Batch
    progress.FirstLoss <- state.FirstLoss
    progress.EpochLossSum <- state.EpochLossSum
    state, order
