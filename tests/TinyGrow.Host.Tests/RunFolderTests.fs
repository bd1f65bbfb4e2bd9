/// The run folder: claimed with a create that fails when anything is at its path (issue 8).
module TinyGrow.Host.Tests.RunFolderTests

open System
open System.IO
open System.Threading.Tasks
open Expecto
open TinyGrow.Host.Commands
open TinyGrow.Host.Tests.TestUtil

let private noon = DateTimeOffset(2026, 1, 2, 12, 0, 0, TimeSpan.Zero)
let private stamp = "20260102-120000"

let private refused (f: unit -> RunFolder) =
    match (try Ok (f ()) with :? RunFolderException as e -> Error e.Message) with
    | Error message -> message
    | Ok folder -> failtestf "expected a refusal, got %s" folder.Partial

let tests =
    testList "run folder" [
        test "claims started in the same second all get their own folder: the timestamp, then -2, -3, …" {
            use tmp = new TempFolder()
            let root = tmp.File "runs"
            let claims = [| for _ in 1 .. 12 -> Task.Run(fun () -> RunFolder.Claim(root, "", noon)) |] |> Task.WhenAll
            let folders = claims.Result
            let ids = folders |> Array.map (fun f -> f.RunId) |> Array.sort
            Expect.equal ids (Array.sort [| yield stamp; for n in 2 .. 12 -> $"{stamp}-{n}" |]) "twelve distinct ids"
            for f in folders do
                Expect.isTrue (Directory.Exists f.Partial) $"{f.Partial} created"
                Expect.equal f.Partial (Path.Combine(root, f.RunId + ".partial")) "the .partial folder"
                Expect.equal f.Final (Path.Combine(root, f.RunId)) "renamed to the id when done"
        }

        test "a chosen id is claimed once; the second claim is refused and writes nothing" {
            use tmp = new TempFolder()
            let root = tmp.File "runs"
            let first = RunFolder.Claim(root, "mine", noon)
            File.WriteAllText(Path.Combine(first.Partial, "config.json"), "{}")
            let message = refused (fun () -> RunFolder.Claim(root, "mine", noon))
            Expect.stringContains message "Output:RunId = 'mine'" "names the key"
            Expect.equal (Directory.GetFileSystemEntries first.Partial) [| Path.Combine(first.Partial, "config.json") |] "nothing added to the first run's folder"
            Expect.stringContains (RunFolder.CheckChosen(root, "mine") |> string) "already exists" "found before the dataset loads too"
            Directory.Move(first.Partial, first.Final)
            Expect.stringContains (refused (fun () -> RunFolder.Claim(root, "mine", noon))) first.Final "a finished run's id is not reused"
            Expect.equal (RunFolder.Claim(root, "", noon)).RunId stamp "a timestamp id is free"
        }

        test "a link planted at the run folder's path is refused and not followed" {
            use tmp = new TempFolder()
            let root = Directory.CreateDirectory(tmp.File "runs").FullName
            let target = Directory.CreateDirectory(tmp.File "elsewhere").FullName
            let link = Path.Combine(root, "planted.partial")
            Directory.CreateSymbolicLink(link, target) |> ignore
            Expect.isNull (RunFolder.CheckChosen(root, "other")) "an unrelated id is free"
            Expect.stringContains (refused (fun () -> RunFolder.Claim(root, "planted", noon))) link "a chosen id whose .partial path is a link"
            Directory.CreateSymbolicLink(Path.Combine(root, "final"), target) |> ignore
            Expect.stringContains (refused (fun () -> RunFolder.Claim(root, "final", noon))) (Path.Combine(root, "final") + " already exists") "a chosen id whose final path is a link"
            // A dangling link too: mkdir would not create its target, and neither may the run.
            File.CreateSymbolicLink(Path.Combine(root, "dangling.partial"), tmp.File "nowhere") |> ignore
            refused (fun () -> RunFolder.Claim(root, "dangling", noon)) |> ignore
            Expect.isFalse (Path.Exists(tmp.File "nowhere")) "the dangling link's target was not created"
            // The timestamp id moves past a link at its path.
            Directory.CreateSymbolicLink(Path.Combine(root, stamp + ".partial"), target) |> ignore
            let claimed = RunFolder.Claim(root, "", noon)
            Expect.equal claimed.RunId $"{stamp}-2" "the next suffix"
            Expect.isNull (DirectoryInfo(claimed.Partial).LinkTarget) "a real folder, not a link"
            Expect.isEmpty (Directory.GetFileSystemEntries target) "nothing was created through a link"
            Expect.equal (FileInfo(link).LinkTarget) target "the planted link is left as it was"
        }
    ]
