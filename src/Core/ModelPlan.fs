/// From the Model section to blocks (DESIGN §3.1): a preset expands into its blocks; the list form
/// is one chain block, "mlp" when every layer is dense, "cnn" when conv layers come first.
module TinyGrow.Core.ModelPlan

open System
open TinyGrow.Abstractions

/// ResNet-18's residual widths per stage (CIFAR form).
let resnet18Widths = [| 64; 128; 256; 512 |]

/// A preset's starting inner width: the fraction of its full width, at least 1.
let startWidth (fraction: float) (full: int) = max 1 (min full (int (Math.Round (fraction * float full))))

/// ResNet-18, CIFAR form: 3×3 stem (64 channels, BN, ReLU, no max pool), four stages of two
/// BasicBlocks (stride 2 at the start of stages 2–4), global average pool and a dense layer.
/// Inner widths start at `fraction` of 64/128/256/512 and may grow to them.
let resnet18 (model: ModelOptions) : BlockSpec list =
    [ yield BlockSpec (Kind = "resnet-stem", Channels = 64)
      for stage in 0 .. 3 do
          for k in 0 .. 1 do
              let full = resnet18Widths[stage]
              yield BlockSpec (Kind = "resnet-basic", Channels = full, Width = startWidth model.WidthFraction full, MaxWidth = full,
                               Stride = (if stage > 0 && k = 0 then 2 else 1), ConvFanOut = model.ConvFanOut)
      yield BlockSpec (Kind = "resnet-head", IsOutput = true, OutputBias = model.OutputBias) ]

let private isConv (spec: LayerSpec) = String.Equals (spec.Kind, "conv", StringComparison.OrdinalIgnoreCase)

/// The blocks of a model.
let blocks (model: ModelOptions) : BlockSpec list =
    match model.Preset with
    | "resnet18" -> resnet18 model
    | "" ->
        let layers = ResizeArray model.Layers
        let kind = if layers.Count > 0 && isConv layers[0] then "cnn" else "mlp"
        [ BlockSpec (Kind = kind, Layers = layers, Head = model.Head, IsOutput = true, OutputBias = model.OutputBias,
                     ConvFanOut = model.ConvFanOut) ]
    | other -> invalidArg "Model:Preset" $"Unknown preset '{other}': use \"resnet18\" or leave it empty."

/// Problems with the model for inputs of `inputShape` (per sample), each naming the key and the
/// fix: unknown block kinds, and each block's own checks (kernel larger than its map, pooling to
/// nothing, MaxWidth below Width…) on the shape the blocks before it produce. Empty: buildable.
let problems (blockKinds: System.Collections.Generic.IReadOnlyDictionary<string, IBlockKind>) (model: ModelOptions)
             (inputShape: int64[]) (classes: int) : string list =
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
    check 0 inputShape specs
