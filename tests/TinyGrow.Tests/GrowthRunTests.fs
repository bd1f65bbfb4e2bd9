/// A short growing run on a teacher-network task: a width-1 student grows with `tiny` while it
/// trains (float32, as in a real run) and its loss falls across growth steps.
module TinyGrow.Tests.GrowthRunTests

open Expecto
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Tests.TestUtil
open TinyGrow.Tests.Fixtures

let private f32 = torch.ScalarType.Float32

/// 2000 inputs in R^10, labels = argmax of a random 10 → 32 (tanh) → 3 teacher.
let private teacherData () =
    use teacher = mlp 201L f32 10 [ 32 ] "tanh" 3
    use x64 = randn 202L 2000L 10L
    let x = x64.to_type f32
    use _ = torch.no_grad ()
    use logits = teacher.Forward x
    x, logits.argmax 1L

let private train (net: Network) (optimizer: IOptimizer) (x: torch.Tensor) (y: torch.Tensor) (epochs: int) =
    for _ in 1 .. epochs do
        for start in 0L .. 100L .. 1900L do
            Training.trainStep net optimizer 0.01 (x.narrow (0L, start, 100L)) (y.narrow (0L, start, 100L)) |> ignore

/// Trains a student of `hidden` widths and a fixed twin, with 4 growth steps of `selection` in
/// between (3 epochs apart); returns the losses after each phase, the events, the widths and the
/// twin's final loss.
let private growingRun (hidden: int list) (selection: string) =
    let x, y = teacherData ()
    use x = x
    use y = y
    use statsX = x.narrow (0L, 0L, 1000L)
    use statsY = y.narrow (0L, 0L, 1000L)
    use heldX = x.narrow (0L, 1000L, 1000L)
    use heldY = y.narrow (0L, 1000L, 1000L)
    use student = mlp 203L f32 10 hidden "tanh" 3
    use fixedStudent = mlp 203L f32 10 hidden "tanh" 3
    let optimizer = Adam ((fun () -> student.Parameters), 0.9, 0.999, 1e-8, 0.0) :> IOptimizer
    let fixedOptimizer = Adam ((fun () -> fixedStudent.Parameters), 0.9, 0.999, 1e-8, 0.0) :> IOptimizer
    let opts = GrowthOptions (NeuronsPerStep = 4, Selection = selection)
    train student optimizer x y 5
    train fixedStudent fixedOptimizer x y 5
    let events = ResizeArray ()
    let losses = ResizeArray [ Training.meanLoss student x y ]
    for stepIndex in 0 .. 3 do
        events.AddRange (Growth.step student tiny opts null stepIndex statsX statsY heldX heldY)
        optimizer.AfterGrowth ()
        train student optimizer x y 3
        train fixedStudent fixedOptimizer x y 3
        losses.Add (Training.meanLoss student x y)
    let fixedLoss = Training.meanLoss fixedStudent x y
    for e in events do
        printfn "growth event %A %s: junction %d added %d γ=%.4g predicted=%.4g measured=%.4g bottleneck=%.4g width=%d"
            hidden selection e.Junction e.Added e.Gamma e.PredictedDecrease e.MeasuredDecrease e.Bottleneck e.Width
    printfn "growth run %A %s: losses %A, widths %A, fixed loss %.4f" hidden selection (Seq.toList losses) student.Widths fixedLoss
    Seq.toList losses, Seq.toList events, student.Widths, fixedLoss

let private checkRun (hidden: int list) (selection: string) =
    let losses, events, widths, fixedLoss = growingRun hidden selection
    let before, after = List.head losses, List.last losses
    Expect.isTrue (Array.exists2 (fun w h -> w > h) widths (List.toArray hidden)) $"a hidden layer grew (widths {widths})"
    Expect.isTrue (events |> List.exists (fun e -> e.Gamma > 0.0 && e.MeasuredDecrease > 0.0 && e.Added > 0))
        "some growth step added neurons with γ > 0 and a measured decrease"
    Expect.isLessThan after before "the loss after the growth steps is below the loss before"
    // A student that grew must do better than the same student trained as long at its start widths.
    Expect.isLessThan after fixedLoss "growing beats staying at the start widths"
    events

let tests =
    testList "growth run" [
        test "a width-1 student (one hidden layer) grows on a teacher task, loss falls across growth steps" {
            checkRun [ 1 ] "all" |> ignore
        }
        test "a 1-1 student (two hidden layers, every junction each step) grows and its loss falls" {
            checkRun [ 1; 1 ] "all" |> ignore
        }
        test "a 1-1 student grown with Selection = best grows and its loss falls" {
            checkRun [ 1; 1 ] "best" |> ignore
        }
        test "a 1-1 student grown with Selection = roundrobin grows both junctions in turn" {
            let events = checkRun [ 1; 1 ] "roundrobin"
            Expect.equal [ for e in events -> e.Junction ] [ 0; 1; 0; 1 ] "one junction per step, in turn"
        }
    ]
