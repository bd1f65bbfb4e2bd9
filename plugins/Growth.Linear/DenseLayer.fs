/// y = x Wᵀ + b, with W (out×in) and b (out) in replaceable parameter cells. Growing appends rows
/// (new outputs) or columns (new inputs); statistics use the layout [W | b] (bias last).
namespace TinyGrow.Growth.Linear

open TorchSharp
open TorchSharp.Modules
open TinyGrow.Abstractions
open TinyGrow.Core

type Tensor = torch.Tensor

type DenseLayer(weight: Tensor, bias: Tensor option, activation: string) =
    let cell (t: Tensor) =
        use d = t.detach ()
        let p = new Parameter (d, true)
        p.DetachFromDisposeScope () |> ignore
        t.Dispose ()
        p
    let mutable w = cell weight
    let mutable b = bias |> Option.map cell
    do Activations.validate activation

    /// A (rows × cols) block of `t` converted to the layer's dtype/device and zero-padded to
    /// (targetRows × targetCols): entries for inputs/outputs added after the statistics were taken.
    let fit (t: Tensor) (targetRows: int64) (targetCols: int64) =
        let t = t.``to`` (w.dtype, w.device)
        if t.shape[0] = targetRows && t.shape[1] = targetCols then t
        else
            let z = torch.zeros ([| targetRows; targetCols |], dtype = w.dtype, device = w.device)
            z.narrow(0L, 0L, t.shape[0]).narrow(1L, 0L, t.shape[1]).copy_ t |> ignore
            z

    /// Splits a (rows × D) tensor in [weights | bias] layout into its weight part (zero-padded to
    /// `cols` columns) and its bias column.
    let splitBias (t: Tensor) (cols: int64) =
        let d = t.shape[1]
        match b with
        | Some _ -> fit (t.narrow (1L, 0L, d - 1L)) t.shape[0] cols, Some (t.narrow(1L, d - 1L, 1L).flatten ())
        | None -> fit t t.shape[0] cols, None

    interface IGrowableLayer with
        member _.Kind = "dense"
        member _.InputWidth = int w.shape[1]
        member _.OutputWidth = int w.shape[0]
        member _.HasBias = b.IsSome
        member _.Activation = activation
        member _.ActivationSlopeAtZero = Activations.slopeAtZero activation
        member _.Parameters = [| yield w; match b with Some p -> yield p | None -> () |]

        member _.Forward(input) =
            let x = if input.dim () > 2L then input.flatten 1L else input
            match b with
            | Some p -> torch.nn.functional.linear (x, w, p)
            | None -> torch.nn.functional.linear (x, w)

        member _.Activate(z) = Activations.apply activation z

        member _.GrowOutputs(fanIn) =
            use _ = torch.no_grad ()
            let rowsW, rowsB = splitBias fanIn w.shape[1]
            [| yield torch.cat ([| w :> Tensor; rowsW |], 0L)
               match b, rowsB with
               | Some p, Some nb -> yield torch.cat ([| p :> Tensor; nb.``to`` (p.dtype, p.device) |], 0L)
               | _ -> () |]

        member _.GrowInputs(fanOut) =
            use _ = torch.no_grad ()
            let cols = fit fanOut w.shape[0] fanOut.shape[1]
            [| yield torch.cat ([| w :> Tensor; cols |], 1L)
               match b with Some p -> yield p.clone () | None -> () |]

        member _.UpdateExisting(delta, scale) =
            use _ = torch.no_grad ()
            let dW, dB = splitBias delta w.shape[1]
            let dW = fit dW w.shape[0] w.shape[1]
            [| yield w - dW * scale
               match b, dB with
               | Some p, Some db -> yield p - (fit (db.unsqueeze 1L) p.shape[0] 1L).flatten () * scale
               | Some p, None -> yield p.clone ()
               | _ -> () |]

        member _.Load(values) =
            let expected = if b.IsSome then 2 else 1
            if values.Count <> expected then invalidArg "values" $"A dense layer has {expected} parameter tensors, got {values.Count}."
            w <- cell values[0]
            if b.IsSome then b <- Some (cell values[1])

        member _.Dispose() =
            w.Dispose ()
            b |> Option.iter (fun p -> p.Dispose ())
