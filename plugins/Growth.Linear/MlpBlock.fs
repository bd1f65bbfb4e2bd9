/// The "mlp" block: x → dense → σ → dense → σ → … → dense (one output per class); a hidden layer may
/// be of any dense-shaped kind. Junction i is
/// dense i → σ_i → dense i+1; growing it widens dense i. One statistics row per sample.
namespace TinyGrow.Growth.Linear

open System
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core

type MlpBlock(layers: IGrowableLayer[], specs: LayerSpec[], outputBias: bool, name: string) =
    let biasOf (l: IGrowableLayer) = if l.HasBias then 1L else 0L
    let junctions: IJunction[] =
        [| for i in 0 .. layers.Length - 2 do
            let a, b = layers[i], layers[i + 1]
            yield Junctions.ChainJunction (
                    $"{name}.dense{i}→dense{i + 1}", a, None, b, specs[i].MaxWidth,
                    (fun () -> int64 a.InputWidth + biasOf a + int64 b.OutputWidth),
                    (fun () -> max (int64 a.InputWidth + biasOf a) (int64 b.InputWidth + biasOf b)),
                    Junctions.denseRows a b,
                    id) |]

    /// Junction i's A is layer i, its B layer i + 1.
    let indexOf (junction: IJunction) =
        match Array.IndexOf (junctions, junction) with
        | -1 -> invalidArg (nameof junction) $"Junction {junction.Name} is not in block {name}."
        | i -> i

    interface IModelBlock with
        member _.Kind = "mlp"
        member _.Junctions = junctions
        member _.Parameters = layers |> Array.collect (fun l -> Seq.toArray l.Parameters) :> _
        member _.Buffers = [||] :> _
        member _.OutputShape = [| int64 layers[layers.Length - 1].OutputWidth |]
        member _.CurrentSpec =
            let hidden =
                [ for i in 0 .. layers.Length - 2 ->
                    let s = specs[i]
                    LayerSpec (Kind = s.Kind, Width = layers[i].OutputWidth, MaxWidth = s.MaxWidth, Activation = s.Activation, Bias = s.Bias) ]
            BlockSpec (Kind = "mlp", Layers = ResizeArray hidden, IsOutput = true, OutputBias = outputBias)

        member _.Forward(input, pass) =
            let inputs, outputs, h = Junctions.chainForward layers (if input.dim () > 2L then input.flatten 1L else input)
            match pass.Records with
            | null -> ()
            | records ->
                for i in 0 .. junctions.Length - 1 do
                    records[junctions[i]] <- JunctionRecord (inputs[i], inputs[i + 1], outputs[i + 1], AOutput = outputs[i])
            h

        member _.Dispose() = layers |> Array.iter (fun l -> l.Dispose ())

    interface IResumableBlock with
        member _.ForwardFrom(junction, aInput, aOutput, _) = Junctions.chainFrom layers (indexOf junction) aInput aOutput

    interface IResumableAfterB with
        member _.BOutputFrom(junction, _, aInput, aOutput, _) =
            let i = indexOf junction
            layers[i + 1].Forward (layers[i].Activate (Junctions.outputsReusing layers[i] aInput aOutput))
        member _.ForwardAfterB(junction, _, bOutput, _) = Junctions.chainAfter layers (indexOf junction + 1) bOutput

/// Builds "mlp" blocks: the hidden layers of the spec, each by its kind ("dense", or a plugin's kind,
/// which must be dense-shaped: y = xWᵀ + b on the flattened input with parameters [W, b], since
/// the junctions take their statistics rows as a dense layer's), then a dense output layer of one
/// neuron per class (identity activation).
type MlpBlockKind() =
    /// The kind that builds `spec`'s layer (the host checked the name before the run).
    static member internal LayerKind (context: BlockContext) (spec: LayerSpec) =
        match context.LayerKinds.TryGetValue spec.Kind with
        | true, kind -> kind
        | _ ->
            let known = String.Join (", ", context.LayerKinds.Keys)
            invalidArg "spec" $"No layer kind '{spec.Kind}' was discovered (known: {known}). Is its plugin in the plugins folder?"

    interface IBlockKind with
        member _.Name = "mlp"

        member _.Validate(spec, inputShape, key) =
            [| if spec.Layers.Count = 0 then yield $"{key}:Layers is empty: an MLP needs at least one hidden layer (e.g. --{key}:Layers:0:Width=1)."
               if not spec.IsOutput then yield $"{key}: an mlp block must end the model (it holds the output layer)."
               for i in 0 .. spec.Layers.Count - 1 do
                   if String.Equals (spec.Layers[i].Kind, "conv", StringComparison.OrdinalIgnoreCase) then
                       yield $"{key}:Layers:{i}:Kind = 'conv': an MLP is made of dense layers; put conv layers first for a CNN." |]

        member _.OutputShape(_, _, classes) = [| int64 classes |]

        member _.Create(spec, context) =
            let output = LayerSpec (Kind = "dense", Width = context.Classes, MaxWidth = context.Classes, Activation = "identity", Bias = spec.OutputBias)
            let specs = Array.append (Seq.toArray spec.Layers) [| output |]
            let mutable width = int (Array.fold (*) 1L context.InputShape)
            let built = ResizeArray<IGrowableLayer> ()
            try
                for s in specs do
                    let layer = (MlpBlockKind.LayerKind context s).Create (s, width, context.Device, context.DType, context.Generator)
                    built.Add layer
                    width <- layer.OutputWidth
            with _ ->
                for l in built do l.Dispose ()
                reraise ()
            new MlpBlock (built.ToArray (), specs, spec.OutputBias, context.Name)
