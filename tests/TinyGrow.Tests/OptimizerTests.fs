/// Growth must not reset training (DESIGN §4.4): optimizer state of existing weights is kept
/// exactly, new entries start at zero, and training continues on the grown network.
module TinyGrow.Tests.OptimizerTests

open Expecto
open TorchSharp
open TinyGrow.Core
open TinyGrow.Tests.TestUtil
open TinyGrow.Tests.Fixtures

let private checkCarriesState (name: string) (makeOptimizer: Network -> IOptimizer) (lr: float) =
    use net = mlp 131L torch.ScalarType.Float32 5 [ 3 ] "tanh" 4
    use x64 = randn 132L 64L 5L
    use x = x64.to_type torch.ScalarType.Float32
    use y = labels 133L 64L 4L
    let optimizer = makeOptimizer net
    for _ in 1 .. 5 do Training.trainStep net optimizer lr x y |> ignore
    let slots = net.Parameters.Length
    let before = Array.init slots (fun i -> optimizer.State i |> Array.map (fun t -> t.clone ()))
    Expect.isTrue (before |> Array.forall (fun s -> s.Length > 0)) $"{name}: every slot has state after training"
    Expect.isTrue (before |> Array.exists (fun s -> maxAbs s[0] > 0.0)) $"{name}: the state is not all zero (else the check is empty)"
    use stats = (StatisticsPass.statisticsPass net x y 64L)[0]
    use proposal = propose net 0 stats 2 (options 0.0 true)
    Expect.equal proposal.Count 2 "two neurons"
    Candidate.commit (Candidate.apply net 0 proposal stats 0.5)
    optimizer.AfterGrowth ()
    let grownShapes = net.Parameters |> Array.map (fun p -> p.shape)
    Expect.equal grownShapes[0] [| 5L; 5L |] "A's weight gained 2 rows"
    Expect.equal grownShapes[2] [| 4L; 5L |] "B's weight gained 2 columns"
    for i in 0 .. slots - 1 do
        let after = optimizer.State i
        Expect.equal after.Length before[i].Length $"{name}: slot {i} keeps its state tensors"
        for k in 0 .. after.Length - 1 do
            let old, now = before[i][k], after[k]
            Expect.equal now.shape grownShapes[i] $"{name}: slot {i} state {k} has the grown shape"
            let mutable lead = now
            for d in 0 .. int (old.dim ()) - 1 do lead <- lead.narrow (int64 d, 0L, old.shape[d])
            Expect.isTrue (identical lead old) $"{name}: slot {i} state {k}: leading block unchanged, bit for bit"
            use rest = now.clone ()
            let mutable restLead = rest
            for d in 0 .. int (old.dim ()) - 1 do restLead <- restLead.narrow (int64 d, 0L, old.shape[d])
            restLead.zero_ () |> ignore
            Expect.equal (maxAbs rest) 0.0 $"{name}: slot {i} state {k}: new entries are zero"
    let lossBefore = Training.meanLoss net x y
    let stepLoss = Training.trainStep net optimizer lr x y
    let lossAfter = Training.meanLoss net x y
    // The batch loss of the step is the loss before the step (float32 forward in another order: 1e-5).
    Expect.floatClose { absolute = 1e-5; relative = 1e-5 } stepLoss lossBefore $"{name}: the step saw the grown network"
    Expect.notEqual lossAfter lossBefore $"{name}: a training step on the grown network changes the loss"
    Expect.isTrue (net.Parameters |> Array.forall (fun p -> isFinite p)) $"{name}: parameters finite"
    for s in before do for t in s do t.Dispose ()

let tests =
    testList "optimizers" [
        test "SGD momentum buffers survive growth" {
            checkCarriesState "sgd" (fun net -> Sgd ((fun () -> net.Parameters), 0.9, 0.0) :> IOptimizer) 0.05
        }
        test "Adam moments and step counts survive growth" {
            checkCarriesState "adam" (fun net -> Adam ((fun () -> net.Parameters), 0.9, 0.999, 1e-8, 0.0) :> IOptimizer) 0.01
        }
    ]
