/// The "cnn" block (VGG-style, from the Model:Layers list form): conv layers, each conv → BatchNorm
/// → σ → pool (none, max2, avg2); then a head (global average pool or flatten); then dense layers
/// and the output layer. Junctions (DESIGN §3.1): conv i → conv i+1 unless a max pool sits
/// between them (not linear: a boundary); the last conv → head → first dense (GAP head); dense →
/// dense. Growing a conv grows its BatchNorm with it.
namespace TinyGrow.Growth.Conv

open System
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core

/// One conv stage: conv → (BN) → σ → pool.
type ConvStage = { Conv: ConvLayer; Norm: GrowableBatchNorm option; Spec: LayerSpec }

/// What a forward pass keeps for the junction records: every layer's input and output.
type private Trace = { ConvIn: Tensor[]; ConvOut: Tensor[]; DenseIn: Tensor[]; DenseOut: Tensor[] }

/// Where a junction's A sits: conv stage i or dense layer i (where a forward can resume).
type private ALayer = ConvStageAt of int | DenseAt of int

module CnnShapes =
    let isConv (s: LayerSpec) = String.Equals (s.Kind, "conv", StringComparison.OrdinalIgnoreCase)

    let poolFactor (pool: string) = if pool = "none" then 1 else 2

    /// Shape after a conv stage, or an error naming the key.
    let stage (key: string) (s: LayerSpec) (c: int64, h: int64, w: int64) : Result<int64 * int64 * int64, string> =
        let extent = int64 (s.Dilation * (s.Kernel - 1) + 1)
        let p = int64 s.ResolvedPadding
        if h + 2L * p < extent || w + 2L * p < extent then
            Error $"{key}:Kernel = {s.Kernel} (dilation {s.Dilation}, padding {p}) spans {extent} pixels but its input map is {h}×{w}: use a smaller kernel, more padding, or less pooling before it."
        else
            let ho = ConvRows.outputSize h s.Kernel s.Stride s.ResolvedPadding s.Dilation
            let wo = ConvRows.outputSize w s.Kernel s.Stride s.ResolvedPadding s.Dilation
            let q = int64 (poolFactor s.Pool)
            if ho / q < 1L || wo / q < 1L then
                Error $"{key}:Pool = {s.Pool} pools a {ho}×{wo} map to nothing: remove the pool or a stride before it."
            else Ok (int64 s.Width, ho / q, wo / q)

/// `lastMap`: H·W of the last conv stage's output (the inputs one channel adds through a flatten).
/// `mode`: how new channels' fan-outs enter the conv or flatten after them (ConvRows.FanOutMode).
type CnnBlock(stages: ConvStage[], head: string, lastMap: int64, dense: IGrowableLayer[], denseSpecs: LayerSpec[], outputBias: bool,
              mode: ConvRows.FanOutMode, name: string) =
    let convs = stages |> Array.map (fun s -> s.Conv :> IGrowableLayer)
    let normOf (s: ConvStage) = s.Norm |> Option.map (fun n -> n :> IGrowingNorm)
    let biasOf (l: IGrowableLayer) = if l.HasBias then 1L else 0L
    let taps (c: ConvLayer) = int64 (c.Kernel * c.Kernel)
    let convRowSize (c: ConvLayer) = int64 (c :> IGrowableLayer).InputWidth * taps c + biasOf c
    let normParameters (s: ConvStage) = if s.Norm.IsSome then 2L else 0L

    /// Junction records, filled by Forward when recording: (A input, B input, B output) per junction,
    /// and where each junction's A sits.
    let junctionList: (IJunction * (Trace -> JunctionRecord) * ALayer) list =
        [ // conv i → conv i+1 (not across a max pool)
          for i in 0 .. stages.Length - 2 do
              let a, b = stages[i], stages[i + 1]
              if a.Spec.Pool <> "max2" then
                  let pool = CnnShapes.poolFactor a.Spec.Pool
                  let rows (r: JunctionRecord) (g: Tensor) (maxRows: int64) (gen: torch.Generator | null) =
                      ConvRows.convToConv mode r.AInput (ConvRows.geometryOf a.Conv) (a.Conv :> IGrowableLayer).HasBias pool
                                          r.BInput (ConvRows.geometryOf b.Conv) (b.Conv :> IGrowableLayer).HasBias g a.Norm.IsSome maxRows gen
                  let fanOutOf (f: Tensor) = match mode with ConvRows.Full -> ConvRows.fullKernels b.Conv.Kernel f | ConvRows.Restricted -> f.alias ()
                  let j =
                      Junctions.ChainJunction (
                          $"{name}.conv{i}→conv{i + 1}", a.Conv, normOf a, b.Conv, a.Spec.MaxWidth,
                          (fun () -> convRowSize a.Conv + normParameters a + int64 (b.Conv :> IGrowableLayer).OutputWidth * taps b.Conv),
                          (fun () -> max (convRowSize a.Conv) (convRowSize b.Conv)),
                          rows, fanOutOf, (pool = 1)) :> IJunction
                  yield j, (fun t -> JunctionRecord (t.ConvIn[i], t.ConvIn[i + 1], t.ConvOut[i + 1], AOutput = t.ConvOut[i])), ConvStageAt i
          // last conv → global average pool or flatten → first dense (not across a pool: the head
          // reads the conv's own map)
          let last = stages[stages.Length - 1]
          if last.Spec.Pool = "none" then
              let d0 = dense[0]
              let flatten = head = "flatten"
              let rows (r: JunctionRecord) (g: Tensor) (maxRows: int64) (gen: torch.Generator | null) =
                  ConvRows.convToHead mode flatten r.AInput (ConvRows.geometryOf last.Conv) (last.Conv :> IGrowableLayer).HasBias r.BInput d0.HasBias g last.Norm.IsSome maxRows gen
              // Through a flatten, neuron k adds H·W inputs: its fan-out repeated over them (restricted) or one per position (full).
              let fanOutOf (f: Tensor) = if flatten then ConvRows.flattenColumns mode lastMap f else f.alias ()
              let perPosition = if flatten then lastMap else 1L
              let j =
                  Junctions.ChainJunction (
                      $"{name}.conv{stages.Length - 1}→{head}→dense0", last.Conv, normOf last, d0, last.Spec.MaxWidth,
                      (fun () -> convRowSize last.Conv + normParameters last + int64 d0.OutputWidth * perPosition),
                      (fun () -> max (convRowSize last.Conv) (int64 d0.InputWidth + biasOf d0)),
                      rows, fanOutOf, false) :> IJunction
              yield j, (fun t -> JunctionRecord (t.ConvIn[stages.Length - 1], t.DenseIn[0], t.DenseOut[0], AOutput = t.ConvOut[stages.Length - 1])), ConvStageAt (stages.Length - 1)
          // dense i → dense i+1
          for i in 0 .. dense.Length - 2 do
              let a, b = dense[i], dense[i + 1]
              let j =
                  Junctions.ChainJunction (
                      $"{name}.dense{i}→dense{i + 1}", a, None, b, denseSpecs[i].MaxWidth,
                      (fun () -> int64 a.InputWidth + biasOf a + int64 b.OutputWidth),
                      (fun () -> max (int64 a.InputWidth + biasOf a) (int64 b.InputWidth + biasOf b)),
                      Junctions.denseRows a b, id) :> IJunction
              yield j, (fun t -> JunctionRecord (t.DenseIn[i], t.DenseIn[i + 1], t.DenseOut[i + 1], AOutput = t.DenseOut[i])), DenseAt i ]
    let junctions = junctionList |> List.map (fun (j, _, _) -> j) |> List.toArray

    /// Conv stage `s` after its conv output `z`: normalisation, σ, pool.
    let afterConv (s: ConvStage) (z: Tensor) (pass: ForwardPass) =
        let normed = match s.Norm with Some n -> n.Forward (z, pass) | None -> z
        let a = (s.Conv :> IGrowableLayer).Activate normed
        match s.Spec.Pool with
        | "max2" -> torch.nn.functional.max_pool2d (a, 2L)
        | "avg2" -> torch.nn.functional.avg_pool2d (a, 2L)
        | _ -> a

    /// The dense layers' input from the last conv stage's output.
    let headOf (h: Tensor) = if head = "gap" then h.mean ([| 2L; 3L |]) else h.flatten 1L

    /// Conv stages `start`.. on `input`, then the head: the dense layers' input. When `trace` is
    /// given, each stage's conv input and output are stored in it.
    /// The first stage's existing conv outputs are reused from `kept` (see Junctions.outputsReusing).
    let convStagesFrom (start: int) (input: Tensor) (kept: Tensor | null) (pass: ForwardPass) (trace: (Tensor[] * Tensor[]) option) =
        let mutable h = input
        for i in start .. stages.Length - 1 do
            let s = stages[i]
            let conv = s.Conv :> IGrowableLayer
            let z = if i = start then Junctions.outputsReusing conv h kept else conv.Forward h
            trace |> Option.iter (fun (convIn, convOut) -> convIn[i] <- h; convOut[i] <- z)
            h <- afterConv s z pass
        headOf h

    /// Where junction's A sits in this block.
    let aLayerOf (junction: IJunction) =
        match junctionList |> List.tryFind (fun (j, _, _) -> obj.ReferenceEquals (j, junction)) with
        | None -> invalidArg (nameof junction) $"Junction {junction.Name} is not in block {name}."
        | Some (_, _, at) -> at

    /// The conv stages (for tests and tools that look inside, never for the engine).
    member _.Stages = stages

    interface IModelBlock with
        member _.Kind = "cnn"
        member _.Junctions = junctions
        member _.Parameters =
            [| for s in stages do
                 yield! (s.Conv :> IGrowableLayer).Parameters
                 match s.Norm with Some n -> yield! (n :> IGrowingNorm).Parameters | None -> ()
               for d in dense do yield! d.Parameters |] :> _
        member _.Buffers = [| for s in stages do match s.Norm with Some n -> yield! n.Buffers | None -> () |] :> _
        member _.OutputShape = [| int64 dense[dense.Length - 1].OutputWidth |]
        member _.CurrentSpec =
            let withWidth (s: LayerSpec) (width: int) =
                LayerSpec (Kind = s.Kind, Width = width, MaxWidth = s.MaxWidth, Activation = s.Activation, Bias = s.Bias,
                           Kernel = s.Kernel, Stride = s.Stride, Padding = s.Padding, Dilation = s.Dilation, BatchNorm = s.BatchNorm, Pool = s.Pool)
            let layers =
                [ for s in stages -> withWidth s.Spec (s.Conv :> IGrowableLayer).OutputWidth
                  for i in 0 .. dense.Length - 2 -> withWidth denseSpecs[i] dense[i].OutputWidth ]
            BlockSpec (Kind = "cnn", Layers = ResizeArray layers, Head = head, IsOutput = true, OutputBias = outputBias,
                       ConvFanOut = (match mode with ConvRows.Full -> "full" | ConvRows.Restricted -> "restricted"))

        member _.Forward(input, pass) =
            let convIn = Array.zeroCreate stages.Length
            let convOut = Array.zeroCreate stages.Length
            let features = convStagesFrom 0 input null pass (Some (convIn, convOut))
            let denseIn, denseOut, logits = Junctions.chainForward dense features
            match pass.Records with
            | null -> ()
            | records ->
                let trace = { ConvIn = convIn; ConvOut = convOut; DenseIn = denseIn; DenseOut = denseOut }
                for j, record, _ in junctionList do records[j] <- record trace
            logits

        member _.Dispose() =
            for s in stages do
                (s.Conv :> IDisposable).Dispose ()
                s.Norm |> Option.iter (fun n -> (n :> IDisposable).Dispose ())
            for d in dense do d.Dispose ()

    interface IResumableBlock with
        member _.ForwardFrom(junction, aInput, aOutput, pass) =
            match aLayerOf junction with
            | ConvStageAt i -> Junctions.chainFrom dense 0 (convStagesFrom i aInput aOutput pass None) null
            | DenseAt i -> Junctions.chainFrom dense i aInput aOutput

    interface IResumableAfterB with
        member _.BOutputFrom(junction, _, aInput, aOutput, pass) =
            match aLayerOf junction with
            | ConvStageAt i ->
                let h = afterConv stages[i] (Junctions.outputsReusing convs[i] aInput aOutput) pass
                // B is the next conv, or after the last conv the first dense layer behind the head.
                if i < stages.Length - 1 then convs[i + 1].Forward h else dense[0].Forward (headOf h)
            | DenseAt i -> dense[i + 1].Forward (dense[i].Activate (Junctions.outputsReusing dense[i] aInput aOutput))
        member _.ForwardAfterB(junction, _, bOutput, pass) =
            match aLayerOf junction with
            | ConvStageAt i when i < stages.Length - 1 ->
                Junctions.chainFrom dense 0 (convStagesFrom (i + 2) (afterConv stages[i + 1] bOutput pass) null pass None) null
            | ConvStageAt _ -> Junctions.chainAfter dense 0 bOutput
            | DenseAt i -> Junctions.chainAfter dense (i + 1) bOutput

/// Builds "cnn" blocks from a layer list: conv layers first, then dense layers; the output layer
/// (one neuron per class) is added.
type CnnBlockKind() =
    static member private Split(spec: BlockSpec) =
        let layers = Seq.toArray spec.Layers
        let convCount = layers |> Array.takeWhile CnnShapes.isConv |> Array.length
        layers[.. convCount - 1], layers[convCount ..]

    interface IBlockKind with
        member _.Name = "cnn"

        member _.Validate(spec, inputShape, key) =
            let convs, denses = CnnBlockKind.Split spec
            [| if inputShape.Length <> 3 then
                   yield $"{key}: a CNN needs image inputs [channels, height, width]; this dataset gives [{String.Join (',', inputShape)}]. Use dense layers only."
               elif convs.Length = 0 then yield $"{key}:Layers:0:Kind: a CNN starts with a conv layer."
               else
                   for i in 0 .. denses.Length - 1 do
                       if CnnShapes.isConv denses[i] then
                           yield $"{key}:Layers:{convs.Length + i}:Kind = '{denses[i].Kind}': after the first dense layer only dense layers may follow (conv layers come first)."
                   if spec.Head <> "gap" && spec.Head <> "flatten" then
                       yield $"{key}:Head = '{spec.Head}': use gap or flatten."
                   yield! ConvRows.fanOutProblems key spec.ConvFanOut
                   let mutable shape = Ok (inputShape[0], inputShape[1], inputShape[2])
                   for i in 0 .. convs.Length - 1 do
                       for p in ConvKind.Problems convs[i] do yield $"{key}:Layers:{i}: {p}"
                       match shape with
                       | Ok s -> shape <- CnnShapes.stage $"{key}:Layers:{i}" convs[i] s
                       | Error _ -> ()
                   match shape with
                   | Error e -> yield e
                   | Ok _ -> () |]

        member _.OutputShape(_, _, classes) = [| int64 classes |]

        member _.Create(spec, context) =
            let convs, denses = CnnBlockKind.Split spec
            let stages = ResizeArray<ConvStage> ()
            let dense = ResizeArray<IGrowableLayer> ()
            try
                let mutable c, h, w = context.InputShape[0], context.InputShape[1], context.InputShape[2]
                for s in convs do
                    let conv = ConvKind.Build (s, int c, s.Bias && not s.BatchNorm, context.Device, context.DType, context.Generator)
                    let norm = if s.BatchNorm then Some (new GrowableBatchNorm (s.Width, context.Device, context.DType)) else None
                    stages.Add { Conv = conv; Norm = norm; Spec = s }
                    match CnnShapes.stage "" s (c, h, w) with
                    | Ok (c2, h2, w2) ->
                        c <- c2
                        h <- h2
                        w <- w2
                    | Error e -> invalidArg "spec" e
                let mutable width = int (if spec.Head = "gap" then c else c * h * w)
                let output = LayerSpec (Kind = "dense", Width = context.Classes, MaxWidth = context.Classes, Activation = "identity", Bias = spec.OutputBias)
                let denseSpecs = Array.append denses [| output |]
                for s in denseSpecs do
                    // "dense" or a plugin's dense-shaped kind (y = xWᵀ + b, parameters [W, b]: the
                    // junctions take their statistics rows as a dense layer's).
                    let kind =
                        match context.LayerKinds.TryGetValue s.Kind with
                        | true, kind -> kind
                        | _ ->
                            let known = String.Join (", ", context.LayerKinds.Keys)
                            invalidArg "spec" $"No layer kind '{s.Kind}' was discovered (known: {known}). Is its plugin in the plugins folder?"
                    let layer = kind.Create (s, width, context.Device, context.DType, context.Generator)
                    dense.Add layer
                    width <- layer.OutputWidth
                new CnnBlock (stages.ToArray (), spec.Head, h * w, dense.ToArray (), denseSpecs, spec.OutputBias,
                              ConvRows.fanOutMode spec.ConvFanOut, context.Name)
            with _ ->
                for s in stages do
                    (s.Conv :> IDisposable).Dispose ()
                    s.Norm |> Option.iter (fun n -> (n :> IDisposable).Dispose ())
                for d in dense do d.Dispose ()
                reraise ()
