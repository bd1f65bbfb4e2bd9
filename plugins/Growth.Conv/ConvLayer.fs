/// y = conv2d(x, W, b; stride, padding, dilation), W: out×in×k×k, in replaceable parameter cells.
/// Statistics rows use the unfold layout (channel-major, then kernel row, then column: the layout
/// of W reshaped to out×(in·k·k)), bias last. Growing appends output channels (rows of W) or input
/// channels; a new input channel's fan-out touches only the kernel's centre tap (restricted mode,
/// DESIGN §4.3; its other taps start at zero and train from there), or the whole kernel (full mode).
namespace TinyGrow.Growth.Conv

open TorchSharp
open TorchSharp.Modules
open TinyGrow.Abstractions
open TinyGrow.Core

type Tensor = torch.Tensor

type ConvLayer(weight: Tensor, bias: Tensor option, stride: int, padding: int, dilation: int, activation: string) =
    let cells = new WeightAndBias (weight, bias)
    /// The outputs of the filters `w` (and `b`) on `input`: Forward with all of them, ForwardOutputs with the last ones.
    let outputsOf (input: Tensor) (w: Tensor) (b: Tensor option) =
        let s, p, d = [| int64 stride; int64 stride |], [| int64 padding; int64 padding |], [| int64 dilation; int64 dilation |]
        match b with
        | Some b -> torch.nn.functional.conv2d (input, w, b, s, p, d)
        | None -> torch.nn.functional.conv2d (input, w, null, s, p, d)
    let kernel = int cells.Weight.shape[2]
    do Activations.validate activation

    let toLayer (t: Tensor) = t.``to`` (cells.Weight.dtype, cells.Weight.device)

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
        let weightCols = if cells.Bias.IsSome then d - 1L else d
        let inStats = weightCols / taps
        let ws = t.narrow(1L, 0L, weightCols).reshape ([| t.shape[0]; inStats; int64 kernel; int64 kernel |]) |> padDim 1L cells.Weight.shape[1]
        let bs = if cells.Bias.IsSome then Some (t.narrow(1L, d - 1L, 1L).flatten ()) else None
        ws, bs

    member _.Kernel = kernel
    member _.Stride = stride
    member _.Padding = padding
    member _.Dilation = dilation

    interface IGrowableLayer with
        member _.Kind = "conv"
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
            let ws, bs = splitRows fanIn
            [| yield torch.cat ([| cells.Weight :> Tensor; ws |], 0L)
               match cells.Bias, bs with
               | Some p, Some nb -> yield torch.cat ([| p :> Tensor; nb |], 0L)
               | _ -> () |]

        member _.GrowInputs(fanOut) =
            use _ = torch.no_grad ()
            let f = toLayer fanOut |> padDim 0L cells.Weight.shape[0]
            let cols =
                if f.dim () = 4L then
                    // Full mode: (out at statistics time) × K × k × k, whole kernels of K new input channels.
                    if f.shape[2] <> int64 kernel || f.shape[3] <> int64 kernel then
                        invalidArg "fanOut" $"Full fan-out kernels are {f.shape[2]}×{f.shape[3]}; this conv's kernel is {kernel}×{kernel}."
                    f
                else
                    // Restricted mode: (out at statistics time) × K, the centre tap of K new input channels.
                    let k = f.shape[1]
                    let cols = torch.zeros ([| cells.Weight.shape[0]; k; int64 kernel; int64 kernel |], dtype = cells.Weight.dtype, device = cells.Weight.device)
                    let centre = int64 ((kernel - 1) / 2)
                    cols.select(3L, centre).select(2L, centre).copy_ f |> ignore
                    cols
            [| yield torch.cat ([| cells.Weight :> Tensor; cols |], 1L)
               match cells.Bias with Some p -> yield p.clone () | None -> () |]

        member _.UpdateExisting(delta, scale) =
            use _ = torch.no_grad ()
            let dW, dB = splitRows delta
            let dW = padDim 0L cells.Weight.shape[0] dW
            [| yield cells.Weight - dW * scale
               match cells.Bias, dB with
               | Some p, Some db -> yield p - (padDim 0L p.shape[0] db) * scale
               | Some p, None -> yield p.clone ()
               | _ -> () |]

        member _.Load(values) = cells.Load (values, "conv")

        member _.Dispose() = (cells :> System.IDisposable).Dispose ()
