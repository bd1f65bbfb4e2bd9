/// A feed-forward network of growable layers: x → L0 → σ0 → L1 → σ1 → … → L_last (logits).
/// Junction j is L_j → σ_j → L_{j+1}; growing it widens L_j.
namespace TinyGrow.Core

open System
open System.Collections.Generic
open TorchSharp
open TinyGrow.Abstractions

type Network(layers: IGrowableLayer[], kinds: ILayerKind[], specs: LayerSpec[]) =
    do
        if layers.Length < 2 then invalidArg "layers" "A growable network needs at least two layers (one junction)."

    member _.Layers = layers
    member _.Kinds = kinds
    /// Specs of every layer (the last one is the output layer).
    member _.Specs = specs
    member _.JunctionCount = layers.Length - 1

    /// Widths of the hidden layers (every layer but the output).
    member _.HiddenWidths = layers[.. layers.Length - 2] |> Array.map (fun l -> l.OutputWidth)

    member _.Parameters: Modules.Parameter[] = layers |> Array.collect (fun l -> Seq.toArray l.Parameters)

    member this.ParameterCount = this.Parameters |> Array.sumBy (fun p -> p.numel ())

    member _.Forward(x: torch.Tensor) : torch.Tensor =
        let mutable h = x
        for i in 0 .. layers.Length - 1 do
            let z = layers[i].Forward h
            h <- if i = layers.Length - 1 then z else layers[i].Activate z
        h

    /// Forward pass keeping every layer's input and pre-activation (for the statistics pass).
    member _.ForwardRecording(x: torch.Tensor) : torch.Tensor[] * torch.Tensor[] =
        let inputs = Array.zeroCreate layers.Length
        let preActivations = Array.zeroCreate layers.Length
        let mutable h = x
        for i in 0 .. layers.Length - 1 do
            inputs[i] <- h
            let z = layers[i].Forward h
            preActivations[i] <- z
            h <- if i = layers.Length - 1 then z else layers[i].Activate z
        inputs, preActivations

    /// Builds the network of `model` (hidden layers) plus a dense-like output layer of `classes`
    /// neurons of the last hidden layer's kind.
    static member Build
        (kinds: IReadOnlyDictionary<string, ILayerKind>, model: ModelOptions, inputShape: int64[], classes: int,
         device: torch.Device, dtype: torch.ScalarType, generator: torch.Generator | null) =
        let kindOf (name: string) =
            match kinds.TryGetValue name with
            | true, k -> k
            | _ ->
                let known = String.Join (", ", kinds.Keys)
                invalidArg "Model:Layers" $"No layer kind '{name}' was discovered (known: {known}). Is its plugin in the plugins folder?"
        let hidden = Seq.toArray model.Layers
        let output =
            LayerSpec (Kind = (if hidden.Length > 0 then hidden[hidden.Length - 1].Kind else "dense"),
                       Width = classes, MaxWidth = classes, Activation = "identity", Bias = model.OutputBias)
        let specs = Array.append hidden [| output |]
        let mutable inputWidth = int (Array.fold (*) 1L inputShape)
        let built = ResizeArray ()
        try
            for spec in specs do
                let kind = kindOf spec.Kind
                let layer = kind.Create (spec, inputWidth, device, dtype, generator)
                built.Add (layer, kind)
                inputWidth <- layer.OutputWidth
        with _ ->
            for layer, _ in built do layer.Dispose ()
            reraise ()
        new Network (built |> Seq.map fst |> Seq.toArray, built |> Seq.map snd |> Seq.toArray, specs)

    interface IDisposable with
        member _.Dispose() = layers |> Array.iter (fun l -> l.Dispose ())
