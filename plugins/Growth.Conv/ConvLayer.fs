/// y = conv2d(x, W, b; stride, padding, dilation), W: out×in×k×k, in replaceable parameter cells.
/// Statistics rows use the unfold layout (channel-major, then kernel row, then column: the layout
/// of W reshaped to out×(in·k·k)), bias last. Growing appends output channels (rows of W) or input
/// channels; a new input channel's fan-out touches only the kernel's centre tap (restricted mode,
/// DESIGN §4.3), so its other taps start at zero and train from there.
namespace TinyGrow.Growth.Conv

open TorchSharp
open TorchSharp.Modules
open TinyGrow.Abstractions
open TinyGrow.Core

type Tensor = torch.Tensor

type ConvLayer(weight: Tensor, bias: Tensor option, stride: int, padding: int, dilation: int, activation: string) =
    let cell (t: Tensor) =
        use d = t.detach ()
        let p = new Parameter (d, true)
        p.DetachFromDisposeScope () |> ignore
        t.Dispose ()
        p
    let mutable w = cell weight
    let mutable b = bias |> Option.map cell
    let kernel = int w.shape[2]
    do Activations.validate activation

    let toLayer (t: Tensor) = t.``to`` (w.dtype, w.device)

    /// Zero-pads dimension `dim` of `t` to `size` (entries for channels added after the statistics).
    let padDim (dim: int64) (size: int64) (t: Tensor) =
        if t.shape[int dim] = size then t
        else
            let shape = Array.copy t.shape
            shape[int dim] <- size
            let z = torch.zeros (shape, dtype = t.dtype, device = t.device)
            z.narrow(dim, 0L, t.shape[int dim]).copy_ t |> ignore
            z

    /// Splits rows in [weights | bias] layout into weights reshaped to (rows, in, k, k), channels
    /// zero-padded to the current input width, and the bias column.
    let splitRows (t: Tensor) =
        let t = toLayer t
        let taps = int64 (kernel * kernel)
        let d = t.shape[1]
        let weightCols = if b.IsSome then d - 1L else d
        let inStats = weightCols / taps
        let ws = t.narrow(1L, 0L, weightCols).reshape ([| t.shape[0]; inStats; int64 kernel; int64 kernel |]) |> padDim 1L w.shape[1]
        let bs = if b.IsSome then Some (t.narrow(1L, d - 1L, 1L).flatten ()) else None
        ws, bs

    member _.Kernel = kernel
    member _.Stride = stride
    member _.Padding = padding
    member _.Dilation = dilation

    interface IGrowableLayer with
        member _.Kind = "conv"
        member _.InputWidth = int w.shape[1]
        member _.OutputWidth = int w.shape[0]
        member _.HasBias = b.IsSome
        member _.Activation = activation
        member _.ActivationSlopeAtZero = Activations.slopeAtZero activation
        member _.Parameters = [| yield w; match b with Some p -> yield p | None -> () |]

        member _.Forward(input) =
            let s, p, d = [| int64 stride; int64 stride |], [| int64 padding; int64 padding |], [| int64 dilation; int64 dilation |]
            match b with
            | Some bias -> torch.nn.functional.conv2d (input, w, bias, s, p, d)
            | None -> torch.nn.functional.conv2d (input, w, null, s, p, d)

        member _.Activate(z) = Activations.apply activation z

        member _.GrowOutputs(fanIn) =
            use _ = torch.no_grad ()
            let ws, bs = splitRows fanIn
            [| yield torch.cat ([| w :> Tensor; ws |], 0L)
               match b, bs with
               | Some p, Some nb -> yield torch.cat ([| p :> Tensor; nb |], 0L)
               | _ -> () |]

        member _.GrowInputs(fanOut) =
            use _ = torch.no_grad ()
            // fanOut: (out at statistics time) × K; the centre tap of K new input channels.
            let f = toLayer fanOut |> padDim 0L w.shape[0]
            let k = f.shape[1]
            let cols = torch.zeros ([| w.shape[0]; k; int64 kernel; int64 kernel |], dtype = w.dtype, device = w.device)
            let centre = int64 ((kernel - 1) / 2)
            cols.select(3L, centre).select(2L, centre).copy_ f |> ignore
            [| yield torch.cat ([| w :> Tensor; cols |], 1L)
               match b with Some p -> yield p.clone () | None -> () |]

        member _.UpdateExisting(delta, scale) =
            use _ = torch.no_grad ()
            let dW, dB = splitRows delta
            let dW = padDim 0L w.shape[0] dW
            [| yield w - dW * scale
               match b, dB with
               | Some p, Some db -> yield p - (padDim 0L p.shape[0] db) * scale
               | Some p, None -> yield p.clone ()
               | _ -> () |]

        member _.Load(values) =
            let expected = if b.IsSome then 2 else 1
            if values.Count <> expected then invalidArg "values" $"A conv layer has {expected} parameter tensors, got {values.Count}."
            w <- cell values[0]
            if b.IsSome then b <- Some (cell values[1])

        member _.Dispose() =
            w.Dispose ()
            b |> Option.iter (fun p -> p.Dispose ())
