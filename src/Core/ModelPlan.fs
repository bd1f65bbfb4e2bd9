/// From the Model section to blocks (DESIGN §3.1): a preset expands into its blocks; the list form
/// is one chain block, "mlp" when every layer is dense, "cnn" when conv layers come first.
module TinyGrow.Core.ModelPlan

open System
open TinyGrow.Abstractions

/// A CIFAR-form ResNet preset: 3×3 stem (BN, ReLU, no max pool), stages of BasicBlocks (stride 2
/// at the start of every stage but the first), global average pool and a dense layer.
type ResNetShape =
    { Stem: int
      /// Residual widths per stage; a block's inner width grows up to its stage's width.
      Widths: int[]
      BlocksPerStage: int }

/// ResNet-18 (He et al. 2016, CIFAR form): 64-channel stem, four stages of two blocks, 64/128/256/512.
let resnet18Shape = { Stem = 64; Widths = [| 64; 128; 256; 512 |]; BlocksPerStage = 2 }

/// ResNet-20 (He et al. 2016, §4.2, the CIFAR network): 16-channel stem, three stages of three blocks,
/// 16/32/64, about 0.27 M parameters: a ResNet a CPU can grow.
let resnet20Shape = { Stem = 16; Widths = [| 16; 32; 64 |]; BlocksPerStage = 3 }

/// The preset names and their shapes.
let resnetPresets = [ "resnet18", resnet18Shape; "resnet20", resnet20Shape ]

/// A preset's starting inner width: the fraction of its full width, at least 1.
let startWidth (fraction: float) (full: int) = max 1 (min full (int (Math.Round (fraction * float full))))

/// The blocks of a ResNet of `shape`. Inner widths start at `fraction` of their stage's width and may
/// grow to it; the residual stream keeps the stage widths.
/// Model:InnerWidths and InnerMaxWidths override the fraction and the caps block by block.
let resnet (shape: ResNetShape) (model: ModelOptions) : BlockSpec list =
    let given (list: System.Collections.Generic.List<int>) (i: int) = if list.Count > i then Some list[i] else None
    [ yield BlockSpec (Kind = "resnet-stem", Channels = shape.Stem)
      for stage in 0 .. shape.Widths.Length - 1 do
          for k in 0 .. shape.BlocksPerStage - 1 do
              let i = stage * shape.BlocksPerStage + k
              let full = shape.Widths[stage]
              let width = given model.InnerWidths i |> Option.defaultValue (startWidth model.WidthFraction full)
              let maxWidth = given model.InnerMaxWidths i |> Option.defaultValue full
              yield BlockSpec (Kind = "resnet-basic", Channels = full, Width = width, MaxWidth = maxWidth,
                               Stride = (if stage > 0 && k = 0 then 2 else 1), ConvFanOut = model.ConvFanOut)
      yield BlockSpec (Kind = "resnet-head", IsOutput = true, OutputBias = model.OutputBias) ]

/// Problems with Model:InnerWidths / InnerMaxWidths for a preset of `shape`.
let innerWidthProblems (shape: ResNetShape) (model: ModelOptions) : string list =
    let blocks = shape.Widths.Length * shape.BlocksPerStage
    let check (name: string) (list: System.Collections.Generic.List<int>) =
        if list.Count = 0 then []
        elif list.Count <> blocks then [ $"Model:{name} lists {list.Count} widths; preset {model.Preset} has {blocks} blocks: give one per block or none." ]
        else
            [ for i in 0 .. blocks - 1 do
                let full = shape.Widths[i / shape.BlocksPerStage]
                if list[i] < 1 || list[i] > full then yield $"Model:{name}:{i} = {list[i]}: block {i}'s inner width must be between 1 and its stage's width {full}." ]
    check "InnerWidths" model.InnerWidths @ check "InnerMaxWidths" model.InnerMaxWidths

/// ResNet-18 (see resnet18Shape).
let resnet18 (model: ModelOptions) : BlockSpec list = resnet resnet18Shape model

let private isConv (spec: LayerSpec) = String.Equals (spec.Kind, "conv", StringComparison.OrdinalIgnoreCase)

/// The blocks of a model.
let blocks (model: ModelOptions) : BlockSpec list =
    match model.Preset with
    | "" ->
        let layers = ResizeArray model.Layers
        let kind = if layers.Count > 0 && isConv layers[0] then "cnn" else "mlp"
        [ BlockSpec (Kind = kind, Layers = layers, Head = model.Head, IsOutput = true, OutputBias = model.OutputBias,
                     ConvFanOut = model.ConvFanOut) ]
    | preset ->
        match List.tryFind (fun (name, _) -> name = preset) resnetPresets with
        | Some (_, shape) -> resnet shape model
        | None -> invalidArg "Model:Preset" $"Unknown preset '{preset}': use \"resnet18\", \"resnet20\" or leave it empty."

/// Problems with the model for inputs of `inputShape` (per sample), each naming the key and the
/// fix: unknown block kinds, and each block's own checks (kernel larger than its map, pooling to
/// nothing, MaxWidth below Width…) on the shape the blocks before it produce. Empty: buildable.
let problems (blockKinds: System.Collections.Generic.IReadOnlyDictionary<string, IBlockKind>) (model: ModelOptions)
             (inputShape: int64[]) (classes: int) : string list =
    let presetProblems =
        match List.tryFind (fun (name, _) -> name = model.Preset) resnetPresets with
        | Some (_, shape) -> innerWidthProblems shape model
        | None -> []
    let specs = blocks model
    let keyOf (i: int) = if model.Preset = "" then "Model" else $"Model:Preset={model.Preset} (block {i})"
    let rec check (i: int) (shape: int64[]) (specs: BlockSpec list) =
        match specs with
        | [] -> []
        | spec :: rest ->
            match blockKinds.TryGetValue spec.Kind with
            | false, _ ->
                let known = String.Join (", ", blockKinds.Keys)
                [ $"{keyOf i}: no block kind '{spec.Kind}' was discovered (known: {known}). Is its plugin in the plugins folder?" ]
            | true, kind ->
                match Seq.toList (kind.Validate (spec, shape, keyOf i)) with
                | [] -> check (i + 1) (kind.OutputShape (spec, shape, classes)) rest
                | errors -> errors
    if not presetProblems.IsEmpty then presetProblems else check 0 inputShape specs
