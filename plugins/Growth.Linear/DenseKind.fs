namespace TinyGrow.Growth.Linear

open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core

/// The "dense" layer kind: y = xWᵀ + b, initialised like PyTorch's nn.Linear.
type DenseKind() =
    interface ILayerKind with
        member _.Name = "dense"

        member _.Validate(spec) =
            [| if not (List.contains spec.Activation Activations.known) then
                   let known = String.concat ", " Activations.known
                   yield $"Activation '{spec.Activation}' is not known to the dense kind: use one of {known}." |]

        member _.Create(spec, inputWidth, device, dtype, generator) =
            if spec.Width < 1 then invalidArg "spec" $"A dense layer needs Width ≥ 1 (got {spec.Width})."
            // PyTorch's nn.Linear initialisation: U(−1/√in, 1/√in) for weights and bias.
            let bound = 1.0 / sqrt (float inputWidth)
            // Drawn on the CPU (the run's generator is a CPU generator, which CUDA sampling refuses),
            // then moved: the same seed gives the same network on every device.
            let uniform (shape: int64[]) =
                use scope = torch.NewDisposeScope ()
                let u = torch.rand (shape, dtype = dtype, generator = generator)
                ((u * 2.0 - 1.0) * bound).``to``(device).MoveToOuterDisposeScope ()
            let w = uniform [| int64 spec.Width; int64 inputWidth |]
            let b = if spec.Bias then Some (uniform [| int64 spec.Width |]) else None
            new DenseLayer (w, b, spec.Activation)
