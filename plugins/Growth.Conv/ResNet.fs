/// ResNet-18 in its CIFAR form, as blocks (DESIGN §3.1): a 3×3 stem (conv → BN → ReLU, no max
/// pool), BasicBlocks conv3×3 → BN → ReLU → conv3×3 → BN, + shortcut (identity, or 1×1 conv + BN
/// when the shape changes), ReLU; and a head (global average pool → dense). A BasicBlock's junction
/// is conv1 → conv2: its inner channels grow, the residual stream keeps its width.
namespace TinyGrow.Growth.Conv

open System
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core

module private Specs =
    let conv (width: int) (kernel: int) (stride: int) =
        LayerSpec (Kind = "conv", Width = width, MaxWidth = width, Kernel = kernel, Stride = stride,
                   Padding = (kernel - 1) / 2, Activation = "relu", Bias = false, BatchNorm = true)

    let imageShape (key: string) (shape: int64[]) =
        [| if shape.Length <> 3 then yield $"{key}: a ResNet needs image inputs [channels, height, width]; this dataset gives [{String.Join (',', shape)}]." |]

/// conv → BN → ReLU (fixed width): the ResNet stem.
type ResNetStem(conv: ConvLayer, norm: GrowableBatchNorm, channels: int, outputShape: int64[]) =
    interface IModelBlock with
        member _.Kind = "resnet-stem"
        member _.Junctions = [||]
        member _.Parameters = Array.append (Seq.toArray (conv :> IGrowableLayer).Parameters) (norm :> IGrowingNorm).Parameters :> _
        member _.Buffers = norm.Buffers :> _
        member _.CurrentSpec = BlockSpec (Kind = "resnet-stem", Channels = channels)
        member _.OutputShape = outputShape
        member _.Forward(input, pass) = torch.nn.functional.relu (norm.Forward ((conv :> IGrowableLayer).Forward input, pass))
        member _.Dispose() =
            (conv :> IDisposable).Dispose ()
            (norm :> IDisposable).Dispose ()

type ResNetStemKind() =
    interface IBlockKind with
        member _.Name = "resnet-stem"
        member _.Validate(spec, shape, key) =
            [| yield! Specs.imageShape key shape
               if spec.Channels < 1 then yield $"{key}:Channels = {spec.Channels}: use 1 or more." |]
        member _.OutputShape(spec, shape, _) = [| int64 spec.Channels; shape[1]; shape[2] |]
        member _.Create(spec, context) =
            let conv = ConvKind.Build (Specs.conv spec.Channels 3 1, int context.InputShape[0], false, context.Device, context.DType, context.Generator)
            let shape = [| int64 spec.Channels; context.InputShape[1]; context.InputShape[2] |]
            new ResNetStem (conv, new GrowableBatchNorm (spec.Channels, context.Device, context.DType), spec.Channels, shape)

/// A BasicBlock whose inner width (conv1's outputs, conv2's inputs) grows.
type BasicBlock(conv1: ConvLayer, bn1: GrowableBatchNorm, conv2: ConvLayer, bn2: GrowableBatchNorm,
                shortcut: (ConvLayer * GrowableBatchNorm) option, spec: BlockSpec, outputShape: int64[], name: string) =
    let taps = 9L
    let mode = ConvRows.fanOutMode spec.ConvFanOut
    let junction =
        Junctions.ChainJunction (
            $"{name}.conv1→conv2", conv1, Some (bn1 :> IGrowingNorm), conv2, spec.MaxWidth,
            (fun () -> int64 (conv1 :> IGrowableLayer).InputWidth * taps + 2L + int64 (conv2 :> IGrowableLayer).OutputWidth * taps),
            (fun () -> max (int64 (conv1 :> IGrowableLayer).InputWidth * taps) (int64 (conv2 :> IGrowableLayer).InputWidth * taps)),
            (fun r g maxRows gen ->
                ConvRows.convToConv mode r.AInput (ConvRows.geometryOf conv1) false 1 r.BInput (ConvRows.geometryOf conv2) false g true maxRows gen),
            (fun f -> match mode with ConvRows.Full -> ConvRows.fullKernels conv2.Kernel f | ConvRows.Restricted -> f.alias ())) :> IJunction

    /// conv2's input (conv1 → BN → ReLU) with `input` entering the block (A reads the block's input).
    let conv2Input (input: Tensor) (pass: ForwardPass) =
        torch.nn.functional.relu (bn1.Forward ((conv1 :> IGrowableLayer).Forward input, pass))

    /// The block's output from conv2's pre-normalisation output z2 and the block's input (the shortcut's).
    let afterConv2 (input: Tensor) (z2: Tensor) (pass: ForwardPass) =
        let main = bn2.Forward (z2, pass)
        let skip =
            match shortcut with
            | Some (c, n) -> n.Forward ((c :> IGrowableLayer).Forward input, pass)
            | None -> input
        torch.nn.functional.relu (main + skip)

    let ownJunction (j: IJunction) =
        if not (obj.ReferenceEquals (j, junction)) then invalidArg (nameof j) $"Junction {j.Name} is not in block {name}."

    interface IModelBlock with
        member _.Kind = "resnet-basic"
        member _.Junctions = [| junction |]
        member _.Parameters =
            [| yield! (conv1 :> IGrowableLayer).Parameters
               yield! (bn1 :> IGrowingNorm).Parameters
               yield! (conv2 :> IGrowableLayer).Parameters
               yield! (bn2 :> IGrowingNorm).Parameters
               match shortcut with
               | Some (c, n) ->
                   yield! (c :> IGrowableLayer).Parameters
                   yield! (n :> IGrowingNorm).Parameters
               | None -> () |] :> _
        member _.Buffers =
            [| yield! bn1.Buffers
               yield! bn2.Buffers
               match shortcut with Some (_, n) -> yield! n.Buffers | None -> () |] :> _
        member _.CurrentSpec =
            BlockSpec (Kind = "resnet-basic", Channels = spec.Channels, Width = (conv1 :> IGrowableLayer).OutputWidth,
                       MaxWidth = spec.MaxWidth, Stride = spec.Stride, ConvFanOut = spec.ConvFanOut)
        member _.OutputShape = outputShape
        member _.Forward(input, pass) =
            let h = conv2Input input pass
            let z2 = (conv2 :> IGrowableLayer).Forward h
            match pass.Records with
            | null -> ()
            | records -> records[junction] <- JunctionRecord (input, h, z2)
            afterConv2 input z2 pass
        member _.Dispose() =
            for d in [ conv1 :> IDisposable; bn1; conv2; bn2 ] do d.Dispose ()
            shortcut |> Option.iter (fun (c, n) -> (c :> IDisposable).Dispose (); (n :> IDisposable).Dispose ())

    interface IResumableAfterB with
        member _.BOutputFrom(j, blockInput, _, _, pass) =
            ownJunction j
            (conv2 :> IGrowableLayer).Forward (conv2Input blockInput pass)
        member _.ForwardAfterB(j, blockInput, bOutput, pass) =
            ownJunction j
            afterConv2 blockInput bOutput pass

type BasicBlockKind() =
    interface IBlockKind with
        member _.Name = "resnet-basic"
        member _.Validate(spec, shape, key) =
            [| yield! Specs.imageShape key shape
               if spec.Width < 1 then yield $"{key}:Width = {spec.Width}: a block needs at least one inner channel."
               if spec.MaxWidth < spec.Width then yield $"{key}:MaxWidth = {spec.MaxWidth} is below Width = {spec.Width}: set MaxWidth ≥ Width."
               if spec.Channels < 1 then yield $"{key}:Channels = {spec.Channels}: use 1 or more."
               yield! ConvRows.fanOutProblems key spec.ConvFanOut
               if spec.Stride < 1 then yield $"{key}:Stride = {spec.Stride}: use 1 or more."
               elif shape.Length = 3 && (shape[1] < int64 spec.Stride || shape[2] < int64 spec.Stride) then
                   yield $"{key}: stride {spec.Stride} on a {shape[1]}×{shape[2]} map leaves nothing: the input images are too small for this preset." |]
        member _.OutputShape(spec, shape, _) =
            [| int64 spec.Channels; ConvRows.outputSize shape[1] 3 spec.Stride 1 1; ConvRows.outputSize shape[2] 3 spec.Stride 1 1 |]
        member this.Create(spec, context) =
            let inC = int context.InputShape[0]
            let build (s: LayerSpec) (inputs: int) = ConvKind.Build (s, inputs, false, context.Device, context.DType, context.Generator)
            let bn (c: int) = new GrowableBatchNorm (c, context.Device, context.DType)
            let conv1 = build (Specs.conv spec.Width 3 spec.Stride) inC
            let conv2 = build (Specs.conv spec.Channels 3 1) spec.Width
            let shortcut =
                if spec.Stride <> 1 || inC <> spec.Channels then Some (build (Specs.conv spec.Channels 1 spec.Stride) inC, bn spec.Channels)
                else None
            let shape = (this :> IBlockKind).OutputShape (spec, context.InputShape, context.Classes)
            new BasicBlock (conv1, bn spec.Width, conv2, bn spec.Channels, shortcut, spec, shape, context.Name)

/// Global average pool → dense (one output per class); fixed.
type ResNetHead(dense: IGrowableLayer, spec: BlockSpec, classes: int) =
    interface IModelBlock with
        member _.Kind = "resnet-head"
        member _.Junctions = [||]
        member _.Parameters = Seq.toArray dense.Parameters :> _
        member _.Buffers = [||] :> _
        member _.CurrentSpec = BlockSpec (Kind = "resnet-head", IsOutput = true, OutputBias = spec.OutputBias)
        member _.OutputShape = [| int64 classes |]
        member _.Forward(input, _) = dense.Forward (input.mean ([| 2L; 3L |]))
        member _.Dispose() = dense.Dispose ()

type ResNetHeadKind() =
    interface IBlockKind with
        member _.Name = "resnet-head"
        member _.Validate(spec, shape, key) =
            [| yield! Specs.imageShape key shape
               if not spec.IsOutput then yield $"{key}: the head must end the model." |]
        member _.OutputShape(_, _, classes) = [| int64 classes |]
        member _.Create(spec, context) =
            let output = LayerSpec (Kind = "dense", Width = context.Classes, MaxWidth = context.Classes, Activation = "identity", Bias = spec.OutputBias)
            new ResNetHead (context.LayerKinds["dense"].Create (output, int context.InputShape[0], context.Device, context.DType, context.Generator), spec, context.Classes)
