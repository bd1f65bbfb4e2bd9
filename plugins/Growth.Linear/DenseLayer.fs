/// y = x Wᵀ + b, with W (out×in) and b (out) in replaceable parameter cells. Growing appends rows
/// (new outputs) or columns (new inputs); statistics use the layout [W | b] (bias last).
namespace TinyGrow.Growth.Linear

open TorchSharp
open TorchSharp.Modules
open TinyGrow.Abstractions
open TinyGrow.Core

type Tensor = torch.Tensor

type DenseLayer(weight: Tensor, bias: Tensor option, activation: string) =
    let cells = new WeightAndBias (weight, bias)
    /// The outputs of the rows of `w` (and `b`) on `input`: Forward with all of them, ForwardOutputs with the last ones.
    let outputsOf (input: Tensor) (w: Tensor) (b: Tensor option) =
        let x = if input.dim () > 2L then input.flatten 1L else input
        match b with
        | Some b -> torch.nn.functional.linear (x, w, b)
        | None -> torch.nn.functional.linear (x, w)
    do Activations.validate activation

    /// A (rows × cols) block of `t` converted to the layer's dtype/device and zero-padded to
    /// (targetRows × targetCols): entries for inputs/outputs added after the statistics were taken.
    let fit (t: Tensor) (targetRows: int64) (targetCols: int64) =
        let t = t.``to`` (cells.Weight.dtype, cells.Weight.device)
        if t.shape[0] = targetRows && t.shape[1] = targetCols then t
        else
            let z = torch.zeros ([| targetRows; targetCols |], dtype = cells.Weight.dtype, device = cells.Weight.device)
            z.narrow(0L, 0L, t.shape[0]).narrow(1L, 0L, t.shape[1]).copy_ t |> ignore
            z

    /// Splits a (rows × D) tensor in [weights | bias] layout into its weight part (zero-padded to
    /// `cols` columns) and its bias column.
    let splitBias (t: Tensor) (cols: int64) =
        let d = t.shape[1]
        match cells.Bias with
        | Some _ -> fit (t.narrow (1L, 0L, d - 1L)) t.shape[0] cols, Some (t.narrow(1L, d - 1L, 1L).flatten ())
        | None -> fit t t.shape[0] cols, None

    interface IGrowableLayer with
        member _.Kind = "dense"
        member _.InputWidth = int cells.Weight.shape[1]
        member _.OutputWidth = int cells.Weight.shape[0]
        member _.HasBias = cells.Bias.IsSome
        member _.Activation = activation
        member _.ActivationSlopeAtZero = Activations.slopeAtZero activation
        member _.Parameters = cells.Parameters

        member _.Forward(input) = outputsOf input cells.Weight (cells.Bias |> Option.map (fun b -> b :> Tensor))

        member _.ForwardOutputs(input, first) =
            let last (t: Tensor) = t.narrow (0L, int64 first, t.shape[0] - int64 first)
            use w = last cells.Weight
            let b = cells.Bias |> Option.map last
            try outputsOf input w b finally b |> Option.iter (fun t -> t.Dispose ())

        member _.Activate(z) = Activations.apply activation z

        member _.GrowOutputs(fanIn) =
            use _ = torch.no_grad ()
            let rowsW, rowsB = splitBias fanIn cells.Weight.shape[1]
            [| yield torch.cat ([| cells.Weight :> Tensor; rowsW |], 0L)
               match cells.Bias, rowsB with
               | Some p, Some nb -> yield torch.cat ([| p :> Tensor; nb.``to`` (p.dtype, p.device) |], 0L)
               | _ -> () |]

        member _.GrowInputs(fanOut) =
            use _ = torch.no_grad ()
            let cols = fit fanOut cells.Weight.shape[0] fanOut.shape[1]
            [| yield torch.cat ([| cells.Weight :> Tensor; cols |], 1L)
               match cells.Bias with Some p -> yield p.clone () | None -> () |]

        member _.UpdateExisting(delta, scale) =
            use _ = torch.no_grad ()
            let dW, dB = splitBias delta cells.Weight.shape[1]
            let dW = fit dW cells.Weight.shape[0] cells.Weight.shape[1]
            [| yield cells.Weight - dW * scale
               match cells.Bias, dB with
               | Some p, Some db -> yield p - (fit (db.unsqueeze 1L) p.shape[0] 1L).flatten () * scale
               | Some p, None -> yield p.clone ()
               | _ -> () |]

        member _.Load(values) = cells.Load (values, "dense")

        member _.Dispose() = (cells :> System.IDisposable).Dispose ()
