/// Plain training and evaluation over whole-split tensors already on the device: batches are
/// index_select'ed from the split's stored samples and turned into inputs by the dataset's
/// pipeline (normalisation, augmentation); one dispose scope per batch keeps memory flat.
module TinyGrow.Core.Training

open TorchSharp
open TinyGrow.Abstractions

/// The samples at `idx` of a split as (network inputs, labels), augmented per sample with
/// `augmentation` (null: plain inputs).
let select (data: LoadedDataset) (split: DataSplit) (idx: torch.Tensor) (augmentation: torch.Generator | null) =
    use samples = split.Samples.index_select (0L, idx)
    let inputs =
        match augmentation with
        | null -> data.Pipeline.Inputs samples
        | generator -> data.Pipeline.AugmentedInputs (samples, generator)
    inputs, split.Labels.index_select (0L, idx)

/// Indices [start, start+count) of a permutation of the training split, as a training batch.
let batch (data: LoadedDataset) (order: torch.Tensor) (start: int64) (count: int64) (augmentation: torch.Generator | null) =
    use idx = order.narrow (0L, start, count)
    select data data.Train idx augmentation

/// Zeroes the gradients of the network's parameters (before a training step's backward).
let zeroGradients (net: Network) =
    for p in net.Parameters do
        match p.grad with
        | null -> ()
        | g -> g.zero_ () |> ignore

/// One SGD/Adam step on a batch; returns the batch's mean loss.
let trainStep (net: Network) (optimizer: IOptimizer) (learningRate: float) (x: torch.Tensor) (y: torch.Tensor) =
    use scope = torch.NewDisposeScope ()
    zeroGradients net
    let logits = net.Forward (x, ForwardPass.TrainStep)
    let loss = torch.nn.functional.cross_entropy (logits, y)
    loss.backward ()
    optimizer.Step learningRate
    loss.ToDouble ()

/// Samples per forward when a loss is measured on many (BatchNorm in a probe uses each chunk's statistics).
let probeChunk = 4096L

/// The (start, count) chunks of at most `size` in which n samples are taken.
let chunksOf (size: int64) (n: int64) = [| for start in 0L .. size .. n - 1L -> start, min size (n - start) |]

/// The (start, count) chunks in which a probe takes n samples.
let probeChunks (n: int64) = chunksOf probeChunk n

/// Samples per forward of an evaluation (eval mode: every sample's output is its own, so the chunk changes
/// no result, only the memory). A chunk's activations live until the chunk ends (its dispose scope holds
/// every intermediate tensor): at 4,096 samples ResNet-20's test evaluation at its full widths took the
/// process from 4.6 to over 10.9 GB resident, and one run beside others was killed for memory.
let evaluationChunk = 512L

/// Summed cross-entropy of a chunk's logits, as a float64: losses over chunks add these up.
let crossEntropySum (logits: torch.Tensor) (labels: torch.Tensor) =
    (torch.nn.functional.cross_entropy (logits, labels, reduction = torch.nn.Reduction.Sum)).ToDouble ()

/// Mean cross-entropy and accuracy of the network on (inputsOf x, y), in chunks of views of x
/// (no copies of x; evaluationChunk in eval mode, else probeChunk), without gradients.
let private lossAndAccuracyOf (pass: ForwardPass) (net: Network) (inputsOf: torch.Tensor -> torch.Tensor) (x: torch.Tensor) (y: torch.Tensor) =
    use _ = torch.no_grad ()
    let n = x.shape[0]
    let mutable lossSum = 0.0
    let mutable correct = 0L
    for start, count in chunksOf (if pass.Training then probeChunk else evaluationChunk) n do
        use scope = torch.NewDisposeScope ()
        let logits = net.Forward (inputsOf (x.narrow (0L, start, count)), pass)
        let labels = y.narrow (0L, start, count)
        lossSum <- lossSum + crossEntropySum logits labels
        correct <- correct + (logits.argmax(1L).eq labels).sum().item<int64> ()
    lossSum / float n, float correct / float n

/// Mean cross-entropy and accuracy of the network (eval mode) on inputs x and labels y.
let lossAndAccuracy (net: Network) (x: torch.Tensor) (y: torch.Tensor) = lossAndAccuracyOf ForwardPass.Evaluation net id x y

/// Mean loss and accuracy over a whole split of a dataset (eval mode, no augmentation).
let evaluate (net: Network) (data: LoadedDataset) (split: DataSplit) =
    lossAndAccuracyOf ForwardPass.Evaluation net data.Pipeline.Inputs split.Samples split.Labels

/// Mean cross-entropy of the network (eval mode) on (x, y).
let meanLoss (net: Network) (x: torch.Tensor) (y: torch.Tensor) = fst (lossAndAccuracy net x y)

/// Mean cross-entropy as the next training steps see it: normalisation from batch statistics
/// (chunks of up to 4,096 samples), running statistics untouched. The γ search measures this.
let probeLoss (net: Network) (x: torch.Tensor) (y: torch.Tensor) = fst (lossAndAccuracyOf ForwardPass.Probe net id x y)
