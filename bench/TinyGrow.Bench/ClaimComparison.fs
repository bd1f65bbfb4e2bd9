/// `claim-cnn` and `claim-resnet [EPOCHS [SEED ...]]`: the claim of issue 20, that a network grown from
/// a few units per layer matches the large network. Four rows per seed, one process, one torch thread:
///   grown         the experiment as shipped (its MaxWidths are the caps);
///   fixed (caps)  the network of the caps, trained from scratch: the target;
///   fixed (grown) the grown row's final widths, trained from scratch: the cost of growing at equal size;
///   random        `random` proposals grown to the grown row's widths: what the method's choice of units adds;
///   fixed (half)  every width at 1/√2 of its cap (about half the caps' parameters), trained from scratch:
///                 what the parameter target asks of a network whose widths are not chosen by growth.
/// Each row states its time to reach the caps network's final accuracy, and to reach it less 0.3 points.
module TinyGrow.Bench.ClaimComparison

open System
open TinyGrow.Abstractions
open TinyGrow.Growth.Strategies
open TinyGrow.Bench.Comparison

let private capsName = "fixed at the caps"
let private grownName = "grown (tiny)"

/// The model with every growable width at its cap (layers, or a preset's full widths).
let private atCaps (model: ModelOptions) =
    let copy = copyOf model
    if copy.Preset <> "" then copy.WidthFraction <- 1.0
    else for layer in copy.Layers do layer.Width <- layer.MaxWidth
    copy

/// Every width at ⌊cap/√2⌋ (a preset: WidthFraction 1/√2): a network with about half the caps' parameters
/// (a conv or dense layer's weights scale with the product of two widths). A preset's stem and stage widths do
/// not scale (WidthFraction is its inner widths'), so its parameters fall less: ResNet-20 keeps 71 %.
let private atHalf (model: ModelOptions) =
    let copy = copyOf model
    if copy.Preset <> "" then copy.WidthFraction <- 1.0 / sqrt 2.0
    else for layer in copy.Layers do layer.Width <- max layer.Width (int (float layer.MaxWidth / sqrt 2.0))
    copy

/// The model at `widths` (a run's final widths, junction order): Width = widths, and MaxWidth too when
/// `cap` (a fixed network), else MaxWidth = widths from the starting widths (grown to them). A preset's
/// blocks take them through Model:InnerWidths and InnerMaxWidths.
let private atWidths (model: ModelOptions) (widths: int[]) (fixedAtThem: bool) =
    if model.Preset = "" then
        if fixedAtThem then withWidths model widths true
        else
            let capped = copyOf model
            for layer, w in Seq.zip capped.Layers widths do layer.MaxWidth <- w
            capped
    else
        let copy = copyOf model
        copy.InnerMaxWidths <- ResizeArray widths
        if fixedAtThem then copy.InnerWidths <- ResizeArray widths
        copy

let rows (data: LoadedDataset) (model: ModelOptions) (training: int -> TrainingOptions) (growth: GrowthOptions) =
    let fixedGrowth = GrowthOptions (Strategy = "none")
    let widthsOf (earlier: Map<string, Run>) = earlier[grownName].Summary.Widths
    [ { Name = grownName; Target = capsName; Run = fun seed _ -> train data (TinyStrategy ()) model (training seed) growth }
      { Name = capsName; Target = ""; Run = fun seed _ -> train data null (atCaps model) (training seed) fixedGrowth }
      { Name = "fixed at the grown widths"; Target = capsName
        Run = fun seed earlier -> train data null (atWidths model (widthsOf earlier) true) (training seed) fixedGrowth }
      { Name = "random (to the grown widths)"; Target = capsName
        Run = fun seed earlier -> train data (RandomStrategy ()) (atWidths model (widthsOf earlier) false) (training seed) growth }
      { Name = "fixed at 1/√2 of the caps"; Target = capsName; Run = fun seed _ -> train data null (atHalf model) (training seed) fixedGrowth } ]

/// Runs the claim's rows for `experiment` and writes the table into section `section` of `results`.
/// `trainSamples` (0: all) takes the first samples of the training split, for networks a CPU trains slowly.
let run (load: DatasetOptions -> LoadedDataset) (experiment: string) (section: string) (epochs: int option) (trainSamples: int)
        (seeds: int list) (results: string) =
    let model = CnnComparison.section<ModelOptions> experiment "Model"
    let growth = CnnComparison.section<GrowthOptions> experiment "Growth"
    let dataset = CnnComparison.section<DatasetOptions> experiment "Dataset"
    dataset.TrainSamples <- trainSamples
    let base' = CnnComparison.section<TrainingOptions> experiment "Training"
    let epochs = defaultArg epochs base'.Epochs
    let training = trainingFor base' epochs
    use data = load dataset
    let rows = rows data model training growth
    let subset = if trainSamples > 0 then $"the first {trainSamples:N0} training samples (a subset, for time)" else "the whole training split"
    let command = $"make bench ARGS=\"{section} {epochs} {String.Join (' ', seeds)}\""
    let fileEpochs = if epochs = base'.Epochs then ", as shipped" else $"; the file says {base'.Epochs}"
    let protocol =
        $"{data.Name}, {subset}, full test split; `{experiment}` ({epochs} epochs{fileEpochs}), grown with `tiny` from its starting widths; the caps network is the same model at every MaxWidth, trained from scratch with the same options; the fixed-at-grown-widths row trains the grown row's final widths from scratch; the random row grows with `random` proposals up to the grown row's widths; the 1/√2 row is every width at ⌊cap/√2⌋ from scratch (about half the caps' parameters; a preset scales its inner widths only, WidthFraction 1/√2, so its stem and stage widths stay and its parameters do not halve). Target: the grown network within 0.3 points of the caps network, with at most half its parameters and at most its wall time. Command: `{command}`."
    let write measured before after =
        let text = tableWithin (Some 0.3) $"Claim: grown against the network of its caps ({experiment})" protocol rows seeds measured before after
        printfn "%s" text
        writeSection results section text
    measure rows seeds write |> ignore
