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

        test "a checkpoint is refused when the metrics.jsonl lines it covers are not the ones its run wrote; lines after them do not matter" {
            let dir = Directory.CreateTempSubdirectory("tinygrow-checkpoint-").FullName
            try
                use net = mlp 583L torch.ScalarType.Float32 6 [ 2; 2 ] "tanh" 3
                let optimizer = Sgd ((fun () -> net.Parameters), 0.9, 0.0)
                use generator = new torch.Generator (584UL)
                let metrics = Path.Combine (dir, "metrics.jsonl")
                let state = RunState.Start ()
                let writeLog () =
                    use log = new RunLog (metrics)
                    log.Write ("epoch", [ "epoch", box 1; "train_loss", box 0.5 ])
                    state.MetricsBytes <- log.Length
                    state.MetricsSha256 <- log.Sha256
                    log.Write ("epoch", [ "epoch", box 2; "train_loss", box 0.4 ])
                writeLog ()
                Checkpoint.write dir net [| 6L |] 3 optimizer [| generator |] null state |> ignore
                let checkpoint = Path.Combine (dir, Checkpoint.fileName)
                Expect.equal (fst (Checkpoint.latest dir)) (Some checkpoint) "taken: the lines it covers are the run's (a line after them too)"
                // One digit changed inside the lines the checkpoint covers (the same length).
                let text = File.ReadAllText metrics
                File.WriteAllText (metrics, text.Replace ("\"train_loss\":0.5", "\"train_loss\":0.6"))
                let picked, refused = Checkpoint.latest dir
                Expect.isNone picked "refused"
                Expect.stringContains (refused |> List.map snd |> String.concat "; ") "are not the ones this checkpoint's run wrote" "with the reason"
                // A log reopened at the checkpoint's length hashes the same bytes it keeps.
                File.WriteAllText (metrics, text)
                use reopened = new RunLog (metrics, state.MetricsBytes)
                Expect.equal (Some reopened.Sha256) (Option.ofObj state.MetricsSha256) "the kept prefix hashes as it did"
            finally Directory.Delete (dir, true)
        }
    ]
