/// scripts/ready-to-run.sh, `make build`'s last step, run on a stand-in app folder: `dotnet` is replaced by a
/// command whose publish succeeds (its images laid out beforehand) or fails (`false`), and which plays the app's
/// `tinygrow plugins` (dotnetStandIn), so what is tested is the script's own part: which files it replaces, that it
/// never writes through a hard link into the package cache, that it keeps the images only once the app has started
/// with them, and that a failed publish or copy, or an app that does not start or refuses a plugin with its images,
/// leaves the app as built without failing the build.
module TinyGrow.Host.Tests.ReadyToRunTests

open System
open System.IO
open Expecto
open TinyGrow.Host.Tests.TestUtil

let private script =
    Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "..", "scripts", "ready-to-run.sh"))

/// A stand-in: app/ with TinyGrow.Core.dll and its symbols and Lib.dll (a hard link to cache/Lib.dll, as the build
/// links package assemblies), the publish's images of both with their symbols, and of Extra.dll, which the app does
/// not have.
let private standIn (folder: TempFolder) =
    let app = Directory.CreateDirectory(folder.File "app").FullName
    let cache = Directory.CreateDirectory(folder.File "cache").FullName
    let publish = Directory.CreateDirectory(Path.Combine(folder.File "out", "publish")).FullName
    File.WriteAllText(Path.Combine(cache, "Lib.dll"), "IL of Lib")
    let code, _, errors = commandOutputs "ln" [ Path.Combine(cache, "Lib.dll"); Path.Combine(app, "Lib.dll") ] []
    if code <> 0 then failtest $"ln failed: {errors}"
    File.WriteAllText(Path.Combine(app, "TinyGrow.Core.dll"), "IL of Core")
    File.WriteAllText(Path.Combine(app, "TinyGrow.Core.pdb"), "symbols of the build")
    File.WriteAllText(Path.Combine(publish, "Lib.dll"), "image of Lib")
    File.WriteAllText(Path.Combine(publish, "Lib.pdb"), "symbols of Lib's image")
    File.WriteAllText(Path.Combine(publish, "TinyGrow.Core.dll"), "image of Core")
    File.WriteAllText(Path.Combine(publish, "TinyGrow.Core.pdb"), "symbols of the image")
    File.WriteAllText(Path.Combine(publish, "Extra.dll"), "image of Extra")
    app, cache

/// The script's own environment wins over the caller's (`READY_TO_RUN=0 make test` must not change the tests).
let private runScript (folder: TempFolder) (dotnet: string) (extra: (string * string) list) =
    commandOutputs "bash" [ script ] ([ "DOTNET", dotnet; "READY_TO_RUN", "1"; "READY_TO_RUN_APP", folder.File "app"; "READY_TO_RUN_OUT", folder.File "out" ] @ extra)

/// The script makes images on x64 and arm64 Linux only; elsewhere it leaves every app as built.
let private skipUnlessImagesAreMade () =
    let arch = Runtime.InteropServices.RuntimeInformation.OSArchitecture
    if not (OperatingSystem.IsLinux()) || not (arch = Runtime.InteropServices.Architecture.X64 || arch = Runtime.InteropServices.Architecture.Arm64) then
        skiptest "the script makes images on x64 and arm64 Linux only"

let private read (folder: string) (name: string) = File.ReadAllText(Path.Combine(folder, name))

/// A stand-in `dotnet`: `publish` succeeds (the images are laid out beforehand); any other call is the script's
/// `tinygrow plugins` from the app's folder, which appends the app's TinyGrow.Core.dll (IL or image) to calls.log,
/// then runs `whenImages` if that is the image and exits 0 otherwise.
let private dotnetStandIn (folder: TempFolder) (whenImages: string) =
    let path = folder.File "dotnet-stand-in"
    let log = folder.File "calls.log"
    File.WriteAllText(path, String.concat "\n" [
        "#!/bin/sh"
        "[ \"$1\" = publish ] && exit 0"
        $"cat TinyGrow.Core.dll >> '{log}'; echo >> '{log}'"
        "if [ \"$(cat TinyGrow.Core.dll)\" = 'image of Core' ]; then"
        whenImages
        "fi"
        "exit 0"
        "" ])
    File.SetUnixFileMode(path, UnixFileMode.UserRead ||| UnixFileMode.UserWrite ||| UnixFileMode.UserExecute)
    path

/// What the stand-in's `tinygrow plugins` calls saw, in order: "IL of Core" or "image of Core".
let private calls (folder: TempFolder) =
    let log = folder.File "calls.log"
    if File.Exists log then File.ReadAllLines log |> Array.filter (fun l -> l <> "") else [||]

/// Hard links to a file (`stat -c %h`): 2 for a package assembly linked to the cache.
let private links (path: string) =
    let code, output, errors = commandOutputs "stat" [ "-c"; "%h"; path ] []
    if code <> 0 then failtest $"stat failed: {errors}"
    int (output.Trim())

/// The script run on a fresh stand-in app with a dotnetStandIn that runs `whenImages` when it sees the images:
/// the app and cache folders, and the script's exit code, output and errors.
let private runWithImages (folder: TempFolder) (whenImages: string) =
    let app, cache = standIn folder
    let code, output, errors = runScript folder (dotnetStandIn folder whenImages) []
    app, cache, code, output, errors

/// Every file of the stand-in app is as built, the cache untouched, nothing left beside the app's files.
let private expectAsBuilt (app: string) (cache: string) =
    Expect.equal (read app "TinyGrow.Core.dll") "IL of Core" "the app's own assembly is back as built"
    Expect.equal (read app "TinyGrow.Core.pdb") "symbols of the build" "its symbols too"
    Expect.equal (read app "Lib.dll") "IL of Lib" "the package assembly is back as built"
    Expect.equal (links (Path.Combine(app, "Lib.dll"))) 2 "and still the hard link into the cache"
    Expect.equal (read cache "Lib.dll") "IL of Lib" "the cache's file behind the link is untouched"
    Expect.isEmpty (Array.append (Directory.GetFiles(app, "*.as-built")) (Directory.GetFiles(app, "*.ready-to-run"))) "nothing left beside the app's files"

let tests =
    testList "ReadyToRun step" [
        test "replaces the app's assemblies by their images, by rename: the package cache's file behind a hard link keeps its content" {
            skipUnlessImagesAreMade ()
            use folder = new TempFolder()
            let app, cache, code, output, errors = runWithImages folder ":"
            Expect.equal code 0 $"exit code (stderr: {errors})"
            Expect.equal (calls folder) [| "IL of Core"; "image of Core" |] "the app started as built, then with its images"
            Expect.equal (read app "TinyGrow.Core.dll") "image of Core" "the app's own assembly is the image"
            Expect.equal (read app "Lib.dll") "image of Lib" "the package assembly is the image"
            Expect.equal (read cache "Lib.dll") "IL of Lib" "the cache's file behind the link is untouched"
            Expect.isFalse (File.Exists(Path.Combine(app, "Extra.dll"))) "an image the app has no assembly for is not added"
            Expect.equal (read app "TinyGrow.Core.pdb") "symbols of the image" "the symbols go with their image"
            Expect.isFalse (File.Exists(Path.Combine(app, "Lib.pdb"))) "symbols the app did not have are not added"
            Expect.isEmpty (Directory.GetFiles(app, "*.ready-to-run")) "no temporary copy left"
            Expect.isEmpty (Directory.GetFiles(app, "*.as-built")) "the build's files are gone once the app started"
            Expect.stringContains output "2 assemblies" "says how many it replaced"
        }
        test "a publish that fails leaves the app as built and the build going, with a warning" {
            skipUnlessImagesAreMade ()
            use folder = new TempFolder()
            let app, cache = standIn folder
            let code, _, errors = runScript folder "false" []
            Expect.equal code 0 "the images are an optimisation: the build goes on"
            Expect.stringContains errors "could not be made" "a warning names what failed"
            expectAsBuilt app cache
        }
        test "an app that does not start with its images gets every file back as built, and the build goes on" {
            skipUnlessImagesAreMade ()
            use folder = new TempFolder()
            // Aborts with the images only, as an app with an image of a stale or foreign publish does.
            let app, cache, code, output, errors = runWithImages folder "echo 'Unhandled exception: a composite image is missing' >&2; exit 134"
            Expect.equal code 0 "the images are an optimisation: the build goes on"
            Expect.equal (calls folder) [| "IL of Core"; "image of Core" |] "the check ran with the images in place"
            Expect.stringContains errors "did not start" "a warning says why"
            Expect.stringContains errors "a composite image is missing" "with the app's own error"
            expectAsBuilt app cache
            Expect.isFalse (output.Contains "replaced by their images") "does not claim the images"
        }
        test "an app that refuses a plugin with its images that it serves as built gets every file back as built" {
            skipUnlessImagesAreMade ()
            use folder = new TempFolder()
            let app, cache, code, _, errors =
                runWithImages folder "echo 'Refused:  plugins/Growth.Linear/Growth.Linear.dll: could not load TinyGrow.Core. Fix: rebuild'"
            Expect.equal code 0 "the build goes on"
            Expect.stringContains errors "refuses plugins" "a warning says why"
            Expect.stringContains errors "Growth.Linear.dll" "naming the plugin"
            expectAsBuilt app cache
        }
        test "a copy that fails half way puts back the files already replaced" {
            skipUnlessImagesAreMade ()
            use folder = new TempFolder()
            let app, cache = standIn folder
            // Zed.dll sorts after Lib.dll and TinyGrow.Core.dll: its image is a dangling link, so its copy fails
            // after those two were replaced.
            File.WriteAllText(Path.Combine(app, "Zed.dll"), "IL of Zed")
            let code, _, errors = commandOutputs "ln" [ "-s"; folder.File "missing"; Path.Combine(folder.File "out", "publish", "Zed.dll") ] []
            if code <> 0 then failtest $"ln failed: {errors}"
            let code, output, errors = runScript folder (dotnetStandIn folder ":") []
            Expect.equal code 0 "the build goes on"
            Expect.stringContains errors "Zed.dll could not be replaced" "a warning names the file"
            expectAsBuilt app cache
            Expect.equal (read app "Zed.dll") "IL of Zed" "the file that failed is as built"
            Expect.isFalse (output.Contains "replaced by their images") "does not claim the images"
        }
        test "READY_TO_RUN=0 skips the step" {
            skipUnlessImagesAreMade ()
            use folder = new TempFolder()
            let app, _ = standIn folder
            let code, output, _ = runScript folder "true" [ "READY_TO_RUN", "0" ]
            Expect.equal code 0 "exit code"
            Expect.stringContains output "skipped" "says it skipped"
            Expect.equal (read app "TinyGrow.Core.dll") "IL of Core" "the app is as built"
        }
    ]
