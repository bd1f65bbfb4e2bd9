namespace TinyGrow.Growth.Conv

open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core

/// The "conv" layer kind: a square-kernel Conv2d initialised like PyTorch's nn.Conv2d
/// (U(−1/√fan_in, 1/√fan_in), fan_in = in·k²). A conv followed by BatchNorm gets no bias (BN's
/// shift is one), whatever `Bias` says.
type ConvKind() =
    /// Problems with the layer's own fields (shapes against the map are the block's to check).
    static member Problems(spec: LayerSpec) =
        [| if not (List.contains spec.Activation Activations.known) then
               let known = String.concat ", " Activations.known
               yield $"Activation '{spec.Activation}' is not known to the conv kind: use one of {known}."
           if spec.Kernel < 1 || spec.Kernel % 2 = 0 then
               yield $"Kernel = {spec.Kernel}: use an odd kernel size (1, 3, 5…): a new channel's fan-out is written at the kernel's centre tap."
           if spec.Stride < 1 then yield $"Stride = {spec.Stride}: use 1 or more."
           if spec.Dilation < 1 then yield $"Dilation = {spec.Dilation}: use 1 or more."
           if spec.Padding < -1 then yield $"Padding = {spec.Padding}: use 0 or more (-1: same size for stride 1)."
           if not (List.contains spec.Pool [ "none"; "max2"; "avg2" ]) then
               yield $"Pool = '{spec.Pool}': use none, max2 or avg2." |]

    static member Build(spec: LayerSpec, inputChannels: int, bias: bool, device: torch.Device, dtype: torch.ScalarType, generator: torch.Generator | null) =
        if spec.Width < 1 then invalidArg "spec" $"A conv layer needs Width ≥ 1 (got {spec.Width})."
        let k = int64 spec.Kernel
        let bound = 1.0 / sqrt (float (int64 inputChannels * k * k))
        // Drawn on the CPU (the run's generator is a CPU generator), then moved: the same seed
        // gives the same network on every device.
        let uniform (shape: int64[]) =
            use scope = torch.NewDisposeScope ()
            let u = torch.rand (shape, dtype = dtype, generator = generator)
            ((u * 2.0 - 1.0) * bound).``to``(device).MoveToOuterDisposeScope ()
        let w = uniform [| int64 spec.Width; int64 inputChannels; k; k |]
        let b = if bias then Some (uniform [| int64 spec.Width |]) else None
        new ConvLayer (w, b, spec.Stride, spec.ResolvedPadding, spec.Dilation, spec.Activation)

    interface ILayerKind with
        member _.Name = "conv"
        member _.Validate(spec) = ConvKind.Problems spec :> _
        member _.Create(spec, inputWidth, device, dtype, generator) =
            ConvKind.Build (spec, inputWidth, spec.Bias && not spec.BatchNorm, device, dtype, generator) :> IGrowableLayer
