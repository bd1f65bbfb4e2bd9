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

/// Mean cross-entropy and accuracy of the network on (x, y), in chunks of views (no copies),
/// without gradients.
let lossAndAccuracy (net: Network) (x: torch.Tensor) (y: torch.Tensor) =
    use _ = torch.no_grad ()
    let n = x.shape[0]
    let mutable lossSum = 0.0
    let mutable correct = 0L
    let mutable start = 0L
    while start < n do
        use scope = torch.NewDisposeScope ()
        let count = min 4096L (n - start)
        let logits = net.Forward (x.narrow (0L, start, count))
        let labels = y.narrow (0L, start, count)
        lossSum <- lossSum + (torch.nn.functional.cross_entropy (logits, labels, reduction = torch.nn.Reduction.Sum)).ToDouble ()
        correct <- correct + (logits.argmax(1L).eq labels).sum().item<int64> ()
        start <- start + count
    lossSum / float n, float correct / float n

/// Mean loss and accuracy over a whole split.
let evaluate (net: Network) (split: DataSplit) = lossAndAccuracy net split.Inputs split.Labels

/// Mean cross-entropy of the network on (x, y).
let meanLoss (net: Network) (x: torch.Tensor) (y: torch.Tensor) = fst (lossAndAccuracy net x y)
