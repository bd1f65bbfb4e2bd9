/// A checkpoint write that fails (a full disk, a folder in the way) leaves no partial file behind: the
/// space its message asks the user to free is not taken by a `checkpoint.bin.tmp`, and the checkpoint
/// before it stands.
module TinyGrow.Tests.CheckpointWriteTests

open System.IO
open Expecto
open TorchSharp
open TinyGrow.Core
open TinyGrow.Tests.Fixtures

let tests =
    testList "checkpoint write" [
        test "a write that fails leaves no temporary file, and the checkpoint before it stands" {
            let dir = Directory.CreateTempSubdirectory("tinygrow-checkpoint-").FullName
            try
                use net = mlp 581L torch.ScalarType.Float32 6 [ 2; 2 ] "tanh" 3
                let optimizer = Sgd ((fun () -> net.Parameters), 0.9, 0.0)
                use generator = new torch.Generator (582UL)
                let state = RunState.Start ()
                let write () = Checkpoint.write dir net [| 6L |] 3 optimizer [| generator |] null state
                Expect.isGreaterThan (write ()) 0L "the first write"
                let first = File.ReadAllBytes (Path.Combine (dir, Checkpoint.fileName))
                // The next write renames the checkpoint to checkpoint.previous.bin: a folder there makes it fail.
                Directory.CreateDirectory (Path.Combine (dir, Checkpoint.previousName)) |> ignore
                Expect.throws (fun () -> write () |> ignore) "the second write fails"
                Expect.isFalse (File.Exists (Path.Combine (dir, Checkpoint.fileName + ".tmp"))) "no temporary file left"
                Expect.equal (File.ReadAllBytes (Path.Combine (dir, Checkpoint.fileName))) first "the checkpoint before it stands"
                Expect.isNone (Checkpoint.problem (Path.Combine (dir, Checkpoint.fileName))) "and reads as good"
            finally Directory.Delete (dir, true)
        }
    ]
