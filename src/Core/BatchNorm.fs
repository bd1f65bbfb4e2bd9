/// BatchNorm over channels (dim 1) that grows with the layer before it:
///   train: y = (x − μ_batch)/√(σ²_batch + ε)·w + β      eval: y = (x − μ_run)/√(σ²_run + ε)·w + β
/// A new channel whose input is z (mean μ_z, variance σ²_z measured on the data) gets
/// w = √(σ²_z + ε), β = μ_z, μ_run = μ_z, σ²_run = σ²_z: in eval mode it passes z through exactly,
/// in train mode up to the batch's deviation from the measured moments. So the grown network
/// computes the intended function (DESIGN §4.4), and z ≡ 0 (γ = 0) gives 0 in both modes.
namespace TinyGrow.Core

open TorchSharp
open TorchSharp.Modules
open TinyGrow.Abstractions

/// A normalisation between A and σ that grows with A: its state (parameters, then buffers) is
/// replaced as a whole, so a candidate can be undone by loading the old state back.
type IGrowingNorm =
    /// Trainable parameters (weight, bias).
    abstract Parameters: Parameter[]
    /// Parameters then buffers, in the order `Load` takes.
    abstract State: torch.Tensor[]
    /// A new state with K channels appended, for inputs of the given means and variances (K each).
    abstract Grown: mean: torch.Tensor * variance: torch.Tensor -> torch.Tensor[]
    /// A new state with K channels appended that standardise inputs of the given means and variances
    /// to unit scale: weight 1, bias 0, running statistics the given moments (so that eval mode
    /// computes what train mode does on data with those moments). New units "unit" (DESIGN §4.7).
    abstract GrownStandardised: mean: torch.Tensor * variance: torch.Tensor -> torch.Tensor[]
    /// Replaces the state (takes ownership; the previous tensors are the caller's).
    abstract Load: torch.Tensor[] -> unit
    /// The normalisation's function for a pass (train/eval, running statistics updated or not).
    abstract Forward: torch.Tensor * ForwardPass -> torch.Tensor

type GrowableBatchNorm(channels: int, device: torch.Device, dtype: torch.ScalarType, ?eps: float, ?momentum: float) =
    let eps = defaultArg eps 1e-5
    let momentum = defaultArg momentum 0.1
    let keep (t: torch.Tensor) = t.DetachFromDisposeScope ()
    let cell = Cells.parameter
    let full (value: float) = torch.full ([| int64 channels |], value.ToScalar (), dtype = dtype, device = device)
    let mutable weight = cell (full 1.0)
    let mutable bias = cell (full 0.0)
    let mutable runningMean = keep (full 0.0)
    let mutable runningVar = keep (full 1.0)

    member _.Channels = int weight.shape[0]
    member _.Eps = eps
    member _.Buffers: torch.Tensor[] = [| runningMean; runningVar |]

    member _.Forward(x: torch.Tensor, pass: ForwardPass) =
        if pass.Training then
            if pass.UpdateRunningStatistics then
                torch.nn.functional.batch_norm (x, runningMean, runningVar, weight, bias, true, momentum, eps)
            else torch.nn.functional.batch_norm (x, null, null, weight, bias, true, momentum, eps)
        else torch.nn.functional.batch_norm (x, runningMean, runningVar, weight, bias, false, momentum, eps)

    interface IGrowingNorm with
        member _.Parameters = [| weight; bias |]
        member _.State = [| weight; bias; runningMean; runningVar |]
        member _.Grown(mean, variance) =
            use _ = torch.no_grad ()
            let fit (t: torch.Tensor) = t.``to`` (dtype, device)
            use mean = fit mean
            use variance = fit (variance.clamp_min (0.0.ToScalar ()))
            [| torch.cat ([| weight :> torch.Tensor; (variance + eps).sqrt () |], 0L)
               torch.cat ([| bias :> torch.Tensor; mean |], 0L)
               torch.cat ([| runningMean; mean |], 0L)
               torch.cat ([| runningVar; variance |], 0L) |]
        member _.GrownStandardised(mean, variance) =
            use _ = torch.no_grad ()
            let fit (t: torch.Tensor) = t.``to`` (dtype, device)
            use mean = fit mean
            use variance = fit (variance.clamp_min (0.0.ToScalar ()))
            [| torch.cat ([| weight :> torch.Tensor; torch.ones_like mean |], 0L)
               torch.cat ([| bias :> torch.Tensor; torch.zeros_like mean |], 0L)
               torch.cat ([| runningMean; mean |], 0L)
               torch.cat ([| runningVar; variance |], 0L) |]
        member _.Load(values) =
            if values.Length <> 4 then invalidArg "values" $"A BatchNorm state is 4 tensors (weight, bias, running mean, running variance), got {values.Length}."
            weight <- cell values[0]
            bias <- cell values[1]
            runningMean <- keep values[2]
            runningVar <- keep values[3]
        member this.Forward(x, pass) = this.Forward (x, pass)

    interface System.IDisposable with
        member _.Dispose() =
            weight.Dispose ()
            bias.Dispose ()
            runningMean.Dispose ()
            runningVar.Dispose ()
