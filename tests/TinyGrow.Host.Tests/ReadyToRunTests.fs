/// scripts/ready-to-run.sh, `make build`'s last step, run on a stand-in app folder: the SDK's publish is replaced
/// by a command that succeeds (`true`, its images laid out beforehand) or fails (`false`), so what is tested is
/// the script's own part: which files it replaces, that it never writes through a hard link into the package
/// cache, and that a failed publish or an app that does not start with its images leaves the app as built without
/// failing the build.
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

let tests =
    testList "ReadyToRun step" [
        test "replaces the app's assemblies by their images, by rename: the package cache's file behind a hard link keeps its content" {
            skipUnlessImagesAreMade ()
            use folder = new TempFolder()
            let app, cache = standIn folder
            let code, output, errors = runScript folder "true" []
            Expect.equal code 0 $"exit code (stderr: {errors})"
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
            Expect.equal (read app "TinyGrow.Core.dll") "IL of Core" "the app is as built"
            Expect.equal (read app "TinyGrow.Core.pdb") "symbols of the build" "the app is as built"
            Expect.equal (read app "Lib.dll") "IL of Lib" "the app is as built"
            Expect.equal (read cache "Lib.dll") "IL of Lib" "the cache is untouched"
        }
        test "an app that does not start with its images gets every file back as built, and the build goes on" {
            skipUnlessImagesAreMade ()
            use folder = new TempFolder()
            let app, cache = standIn folder
            // A `dotnet` whose publish succeeds (the images are laid out) and whose app aborts, as an app with an
            // image of a stale or foreign publish does.
            let dotnet = folder.File "dotnet-stand-in"
            File.WriteAllText(dotnet, "#!/bin/sh\n[ \"$1\" = publish ] && exit 0\necho 'Unhandled exception: a composite image is missing' >&2\nexit 134\n")
            File.SetUnixFileMode(dotnet, UnixFileMode.UserRead ||| UnixFileMode.UserWrite ||| UnixFileMode.UserExecute)
            let code, output, errors = runScript folder dotnet []
            Expect.equal code 0 "the images are an optimisation: the build goes on"
            Expect.stringContains errors "did not start" "a warning says why"
            Expect.stringContains errors "a composite image is missing" "with the app's own error"
            Expect.equal (read app "TinyGrow.Core.dll") "IL of Core" "the app's own assembly is back as built"
            Expect.equal (read app "TinyGrow.Core.pdb") "symbols of the build" "its symbols too"
            Expect.equal (read app "Lib.dll") "IL of Lib" "the package assembly is back as built"
            Expect.equal (read cache "Lib.dll") "IL of Lib" "the cache's file behind the link is untouched"
            Expect.isEmpty (Array.append (Directory.GetFiles(app, "*.as-built")) (Directory.GetFiles(app, "*.ready-to-run"))) "nothing left beside the app's files"
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
