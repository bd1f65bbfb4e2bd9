/// Plain training and evaluation over whole-split tensors already on the device: batches are
/// index_select'ed from the split, one dispose scope per batch keeps memory flat.
module TinyGrow.Core.Training

open TorchSharp
open TinyGrow.Abstractions

/// Indices [start, start+count) of a permutation, as a batch of (inputs, labels).
let batch (split: DataSplit) (order: torch.Tensor) (start: int64) (count: int64) =
    use idx = order.narrow (0L, start, count)
    split.Inputs.index_select (0L, idx), split.Labels.index_select (0L, idx)

/// One SGD/Adam step on a batch; returns the batch's mean loss.
let trainStep (net: Network) (optimizer: IOptimizer) (learningRate: float) (x: torch.Tensor) (y: torch.Tensor) =
    use scope = torch.NewDisposeScope ()
    for p in net.Parameters do
        match p.grad with
        | null -> ()
        | g -> g.zero_ () |> ignore
    let logits = net.Forward x
    let loss = torch.nn.functional.cross_entropy (logits, y)
    loss.backward ()
    optimizer.Step learningRate
    loss.ToDouble ()

/// Mean cross-entropy and accuracy over `count` samples of `split` taken in `order` (no gradients).
let evaluateOn (net: Network) (split: DataSplit) (order: torch.Tensor) (count: int64) (chunk: int64) =
    use _ = torch.no_grad ()
    let mutable lossSum = 0.0
    let mutable correct = 0L
    let mutable start = 0L
    while start < count do
        use scope = torch.NewDisposeScope ()
        let n = min chunk (count - start)
        let x, y = batch split order start n
        let logits = net.Forward x
        lossSum <- lossSum + (torch.nn.functional.cross_entropy (logits, y, reduction = torch.nn.Reduction.Sum)).ToDouble ()
        correct <- correct + (logits.argmax(1L).eq y).sum().item<int64> ()
        start <- start + n
    lossSum / float count, float correct / float count

/// Mean loss and accuracy over a whole split.
let evaluate (net: Network) (split: DataSplit) =
    use order = torch.arange (split.Count, device = split.Labels.device)
    evaluateOn net split order split.Count 2048L

/// Mean cross-entropy of the network on (x, y), in chunks, without gradients.
let meanLoss (net: Network) (x: torch.Tensor) (y: torch.Tensor) =
    use _ = torch.no_grad ()
    let n = x.shape[0]
    let mutable sum = 0.0
    let mutable start = 0L
    while start < n do
        use scope = torch.NewDisposeScope ()
        let count = min 4096L (n - start)
        let logits = net.Forward (x.narrow (0L, start, count))
        sum <- sum + (torch.nn.functional.cross_entropy (logits, y.narrow (0L, start, count), reduction = torch.nn.Reduction.Sum)).ToDouble ()
        start <- start + count
    sum / float n
