/// A layer's weight and optional bias held in replaceable parameter cells (DESIGN: growing swaps
/// whole tensors in; a candidate is undone by loading the old ones back).
namespace TinyGrow.Core

open System.Collections.Generic
open TorchSharp
open TorchSharp.Modules

module Cells =
    /// A trainable parameter holding `t`'s values, owned by nobody's dispose scope (it outlives
    /// the batch or candidate scope it was made in); `t` is disposed.
    let parameter (t: torch.Tensor) =
        use d = t.detach ()
        let p = new Parameter (d, true)
        p.DetachFromDisposeScope () |> ignore
        t.Dispose ()
        p

/// A weight and an optional bias as parameters (made with Cells.parameter, taking ownership of the
/// tensors given); Load swaps in new values.
type WeightAndBias(weight: torch.Tensor, bias: torch.Tensor option) =
    let mutable w = Cells.parameter weight
    let mutable b = bias |> Option.map Cells.parameter

    /// The current weight.
    member _.Weight = w
    /// The current bias, if the layer has one.
    member _.Bias = b
    /// Weight, then bias if any: the order of a layer's Parameters and of Load's values.
    member _.Parameters: Parameter[] = [| yield w; match b with Some p -> yield p | None -> () |]

    /// Replaces the tensors (weight, then bias if the layer has one), taking ownership.
    member _.Load(values: IReadOnlyList<torch.Tensor>, layerKind: string) =
        let expected = if b.IsSome then 2 else 1
        if values.Count <> expected then invalidArg "values" $"A {layerKind} layer has {expected} parameter tensors, got {values.Count}."
        w <- Cells.parameter values[0]
        if b.IsSome then b <- Some (Cells.parameter values[1])

    interface System.IDisposable with
        member _.Dispose() =
            w.Dispose ()
            b |> Option.iter (fun p -> p.Dispose ())
