/// Reports: figures that decode as PNGs of the stated size, report.md naming them, and clear
/// errors (file and line named, exit 2, nothing written) for a missing or corrupt metrics.jsonl.
module TinyGrow.Host.Tests.ReportTests

open System
open System.IO
open System.Buffers.Binary
open Expecto
open TinyGrow.Host
open TinyGrow.Host.Commands
open TinyGrow.Host.Reports
open TinyGrow.Host.Tests.TestUtil

/// (width, height) from a PNG's signature and IHDR chunk; fails on anything else.
let pngSize (path: string) =
    let bytes = File.ReadAllBytes path
    Expect.isGreaterThan bytes.Length 33 $"{path}: longer than a PNG header"
    Expect.equal bytes[0..7] [| 0x89uy; 0x50uy; 0x4Euy; 0x47uy; 0x0Duy; 0x0Auy; 0x1Auy; 0x0Auy |] $"{path}: PNG signature"
    Expect.equal (Text.Encoding.ASCII.GetString(bytes, 12, 4)) "IHDR" $"{path}: IHDR first"
    BinaryPrimitives.ReadInt32BigEndian(ReadOnlySpan(bytes, 16, 4)), BinaryPrimitives.ReadInt32BigEndian(ReadOnlySpan(bytes, 20, 4))

/// A two-epoch, two-junction run's metrics, as the engine writes them (null: a non-finite value).
let sampleMetrics =
    [ """{"event":"growth","epoch":1,"junction":0,"added":3,"width":4,"gamma":0.5,"predicted_decrease":0.2,"measured_decrease":0.1,"bottleneck":1.5}"""
      """{"event":"growth","epoch":1,"junction":1,"added":2,"width":3,"gamma":0.4,"predicted_decrease":0.1,"measured_decrease":0.05,"bottleneck":0.9}"""
      """{"event":"growth","epoch":1,"junction":0,"added":4,"width":8,"gamma":0.3,"predicted_decrease":0.1,"measured_decrease":0.08,"bottleneck":1.1}"""
      """{"event":"growth","epoch":1,"junction":1,"added":0,"width":3,"gamma":0,"predicted_decrease":0,"measured_decrease":0,"bottleneck":0.7}"""
      """{"event":"epoch","epoch":1,"train_loss":1.2,"test_loss":0.9,"test_accuracy":0.71,"parameters":6500,"widths":[8,3],"seconds":2.5}"""
      """{"event":"growth","epoch":2,"junction":0,"added":8,"width":16,"gamma":0.2,"predicted_decrease":0.05,"measured_decrease":0.04,"bottleneck":0.6}"""
      """{"event":"growth","epoch":2,"junction":1,"added":5,"width":8,"gamma":0.2,"predicted_decrease":0.03,"measured_decrease":null,"bottleneck":0.4}"""
      """{"event":"epoch","epoch":2,"train_loss":0.7,"test_loss":0.6,"test_accuracy":0.8,"parameters":13000,"widths":[16,8],"seconds":5.0}"""
      """{"event":"final","test_accuracy":0.8,"parameters":13000,"widths":[16,8],"seconds":5.1,"growth_seconds":0.7}""" ]

let private runFolder (folder: TempFolder) (lines: string list) =
    File.WriteAllText(folder.File "metrics.jsonl", String.Join("\n", lines) + "\n")
    folder.Path

let private report (folder: string) =
    use out = new StringWriter()
    use err = new StringWriter()
    let code = ReportCommand.Execute(folder, out, err)
    code, err.ToString()

[<Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)>]
extern int private sendSignal(int pid, int signal)

/// A pid no process has now: that of a process that has ended.
let private endedPid () =
    use p = Diagnostics.Process.Start("true")
    p.WaitForExit()
    p.Id

/// metrics.jsonl of `epochs` epochs with `perEpoch` growth lines each: a report that takes seconds to draw.
let private longMetrics (epochs: int) (perEpoch: int) =
    [ for e in 1 .. epochs do
        for k in 1 .. perEpoch do
            yield $"""{{"event":"growth","epoch":{e},"junction":{k % 2},"added":1,"width":{k},"gamma":0.5,"predicted_decrease":0.2,"measured_decrease":0.1,"bottleneck":1.5}}"""
        yield $"""{{"event":"epoch","epoch":{e},"train_loss":1.0,"test_loss":0.9,"test_accuracy":0.7,"parameters":6500,"widths":[8,3],"seconds":{e}.0}}""" ]

let tests =
    testList "reports" [
        test "temporaries a killed report left (its pid no longer running) are removed by the next report; a running process's are kept" {
            use folder = new TempFolder()
            let path = runFolder folder sampleMetrics
            let left = folder.File $"{RunReport.Figures[0]}.{endedPid ()}.tmp"
            let running = folder.File $"{RunReport.Figures[1]}.1.tmp" // pid 1 runs as long as the system does
            File.WriteAllText(left, "half a figure")
            File.WriteAllText(running, "being written")
            let code, err = report path
            Expect.equal code ExitCodes.Ok $"the report is written ({err})"
            Expect.isFalse (File.Exists left) "the killed report's temporary is removed"
            Expect.isTrue (File.Exists running) "a running process's is left to it"
        }

        test "SIGTERM during a report stops it between two files: exit 130, a message, nothing replaced, no temporary left" {
            use folder = new TempFolder()
            let path = runFolder folder (longMetrics 20 3000)
            let errors = Text.StringBuilder()
            use p = CheckpointTests.start folder.Path [ "report"; path ] errors
            // Signalled once its first temporary file exists: the handler is in place by then.
            let first = folder.File $"{RunReport.Figures[0]}.{p.Id}.tmp"
            let clock = Diagnostics.Stopwatch.StartNew()
            while not (File.Exists first) && not p.HasExited && clock.Elapsed.TotalSeconds < 120.0 do Threading.Thread.Sleep 2
            Expect.isTrue (File.Exists first) $"the report started writing ({errors})"
            Expect.equal (sendSignal(p.Id, 15)) 0 "SIGTERM sent"
            let code = CheckpointTests.finish p
            Expect.equal code ExitCodes.Cancelled $"exit 130 ({errors})"
            Expect.stringContains (string errors) "stopped by a signal" "says why"
            Expect.isEmpty (Directory.GetFiles(folder.Path, "*.tmp")) "no temporary file left"
            for f in RunReport.Markdown :: List.ofSeq RunReport.Figures do
                Expect.isFalse (File.Exists(folder.File f)) $"{f} not written"
        }

        test "report and submit take one operand; report takes no configuration" {
            let parse (args: string list) = CommandLine.Parse(List.toArray args)
            let r = parse [ "report"; "runs/x" ]
            Expect.equal (r.Verb, r.Argument, r.Error) (Verb.Report, "runs/x", null) "report <folder>"
            Expect.stringContains (string (parse [ "report" ]).Error) "needs the run folder" "report alone"
            Expect.stringContains (string (parse [ "report"; "x"; "--Training:Epochs=2" ]).Error) "only a run folder" "no configuration"
            let s = parse [ "submit"; "e.json"; "--Daemon:QueueFolder=q" ]
            Expect.equal (s.Verb, s.Argument, List.ofSeq s.ConfigurationArguments) (Verb.Submit, "e.json", [ "--Daemon:QueueFolder=q" ]) "submit <file> with configuration"
            Expect.stringContains (string (parse [ "jobs"; "extra" ]).Error) "unexpected argument" "jobs takes no operand"
        }

        test "a run folder that cannot take the report (a folder where a figure goes) exits 2 naming it, and leaves no temporary file" {
            use folder = new TempFolder()
            let path = runFolder folder sampleMetrics
            Directory.CreateDirectory(Path.Combine(path, "loss-accuracy.png")) |> ignore
            // Before, the exception escaped `report` (run before the host's handlers): the runtime aborted, exit 134.
            let code, err = report path
            Expect.equal code ExitCodes.BadConfiguration $"exit 2 ({err})"
            for part in [ "cannot write into"; "loss-accuracy.png"; "Make the folder writable" ] do
                Expect.stringContains err part $"the message names {part}"
            Expect.isEmpty (Directory.GetFiles(path, "*.tmp")) "no temporary file left"
        }

        test "a report that cannot write its last file replaces none: the files of the report before stay as they were" {
            use folder = new TempFolder()
            let path = runFolder folder sampleMetrics
            let code, err = report path
            Expect.equal code ExitCodes.Ok $"a first report ({err})"
            let before = [ for f in RunReport.Markdown :: List.ofSeq RunReport.Figures -> f, (if File.Exists (folder.File f) then File.ReadAllBytes (folder.File f) else [||]) ]
            // More epochs, so that every file of a new report differs; then a folder where the last figure goes.
            File.AppendAllText(folder.File "metrics.jsonl", "{\"event\":\"epoch\",\"epoch\":3,\"train_loss\":0.5,\"test_loss\":0.5,\"test_accuracy\":0.85,\"parameters\":13000,\"widths\":[16,8],\"seconds\":7.5}\n")
            let last = folder.File (Seq.last RunReport.Figures)
            File.Delete last
            Directory.CreateDirectory last |> ignore
            let code, err = report path
            Expect.equal code ExitCodes.BadConfiguration $"exit 2 ({err})"
            Expect.stringContains err (Seq.last RunReport.Figures) "names the file in the way"
            for name, bytes in before do
                if name <> Seq.last RunReport.Figures then
                    Expect.equal (File.ReadAllBytes (folder.File name)) bytes $"{name} is the first report's"
            Expect.isEmpty (Directory.GetFiles(path, "*.tmp")) "no temporary file left"
        }

        test "the figures decode as PNGs of the stated size and report.md shows them with the final numbers" {
            use folder = new TempFolder()
            let code, err = report (runFolder folder sampleMetrics)
            Expect.equal code ExitCodes.Ok $"exit 0 ({err})"
            let md = File.ReadAllText(folder.File RunReport.Markdown)
            for figure in RunReport.Figures do
                Expect.equal (pngSize (folder.File figure)) (RunReport.Width, RunReport.Height) $"{figure}: {RunReport.Width}×{RunReport.Height}"
                Expect.stringContains md $"]({figure})" $"report.md shows {figure}"
            Expect.stringContains md "80.00 %" "final accuracy"
            Expect.stringContains md "16 / 8" "final widths"
            Expect.isFalse (md.Contains "widths set by") "no line for a run written before widths_set_by"
            Expect.isEmpty (Directory.GetFiles(folder.Path, "*.tmp")) "no temporary file left"
        }

        test "the widths-and-accuracy picture is one PNG of the stated size; a corrupt metrics.jsonl writes nothing" {
            use folder = new TempFolder()
            let run = runFolder folder sampleMetrics
            let picture = folder.File "picture.png"
            RunReport.WriteWidthsAndAccuracy(run, picture)
            Expect.equal (pngSize picture) (RunReport.Width, RunReport.Height) "one figure of the report's size"
            Expect.equal (Directory.GetFiles folder.Path |> Array.map Path.GetFileName |> Array.sort) [| "metrics.jsonl"; "picture.png" |] "nothing else written"
            File.Delete picture
            runFolder folder [ sampleMetrics[0]; "not json at all" ] |> ignore
            Expect.throwsT<ReportException> (fun () -> RunReport.WriteWidthsAndAccuracy(run, picture)) "a corrupt line is an error"
            Expect.isFalse (File.Exists picture) "and no picture"
        }

        test "report.md says what set the widths when the final line says it" {
            use folder = new TempFolder()
            let final = sampleMetrics[8].Replace("}", ""","widths_set_by":["MaxWidth","schedule, still growing"]}""")
            let code, err = report (runFolder folder (sampleMetrics[0..7] @ [ final ]))
            Expect.equal code ExitCodes.Ok $"exit 0 ({err})"
            Expect.stringContains (File.ReadAllText(folder.File RunReport.Markdown)) "| widths set by | MaxWidth / schedule, still growing |" "one reason per grown layer"
            let bad = sampleMetrics[8].Replace("}", ""","widths_set_by":[1,2]}""")
            let code, err = report (runFolder folder (sampleMetrics[0..7] @ [ bad ]))
            Expect.equal code ExitCodes.BadConfiguration "not strings: exit 2"
            Expect.stringContains err "'widths_set_by' is not an array of strings" "names the field"
        }

        test "growth lines are placed as evenly spaced steps within their epoch" {
            use folder = new TempFolder()
            let metrics = RunMetrics.Read(runFolder folder sampleMetrics |> fun f -> Path.Combine(f, "metrics.jsonl"))
            Expect.equal (metrics.GrowthTimes()) [| 0.0; 0.0; 0.5; 0.5; 1.0; 1.0 |] "two steps in epoch 1 (junctions 0,1 then 0,1), one in epoch 2"
            Expect.isTrue (Double.IsNaN metrics.Growths[5].MeasuredDecrease) "null reads as NaN"
        }

        test "an unfinished run (no final line, an incomplete last line) still gets a report that says so" {
            use folder = new TempFolder()
            File.WriteAllText(folder.File "metrics.jsonl", String.Join("\n", sampleMetrics[0..4]) + "\n{\"event\":\"epo")
            let code, err = report folder.Path
            Expect.equal code ExitCodes.Ok "exit 0"
            Expect.stringContains err "incomplete last line" "the skipped line is a warning"
            Expect.stringContains (File.ReadAllText(folder.File RunReport.Markdown)) "did not complete" "report.md says the run did not complete"
        }

        test "a corrupt or missing metrics.jsonl is an error naming the file and line; nothing is written" {
            use folder = new TempFolder()
            let path = folder.File "metrics.jsonl"
            let expectError (lines: string list) (parts: string list) =
                let code, err = report (runFolder folder lines)
                Expect.equal code ExitCodes.BadConfiguration $"exit 2 ({err})"
                for part in parts do Expect.stringContains err part $"the message names {part}"
            expectError [ sampleMetrics[0]; "not json at all"; sampleMetrics[4] ] [ $"{path} line 2"; "not a JSON object" ]
            expectError [ sampleMetrics[0]; """{"event":"epoch","epoch":1}"""; sampleMetrics[4] ] [ $"{path} line 2"; "'train_loss' is missing" ]
            expectError [ """{"event":"epoch","epoch":1,"train_loss":1,"test_loss":1,"test_accuracy":0.5,"parameters":10,"widths":"8","seconds":1}""" ] [ "'widths' is not an array" ]
            expectError [ sampleMetrics[0]; """{"event":"epoch","epoch":1,"train_loss":1,"test_loss":1,"test_accuracy":1e999,"parameters":10,"widths":[8],"seconds":1}""" ]
                        [ $"{path} line 2"; "'test_accuracy' = Infinity is not an accuracy" ]
            expectError [ sampleMetrics[4]; """{"event":"final","test_accuracy":-0.5,"parameters":10,"widths":[8],"seconds":1,"growth_seconds":0}""" ]
                        [ $"{path} line 2"; "'test_accuracy' = -0.5 is not an accuracy" ]
            expectError [] [ path; "no events" ]
            File.Delete path
            let code, err = report folder.Path
            Expect.equal code ExitCodes.BadConfiguration "missing file: exit 2"
            Expect.stringContains err $"{path} not found" "names the missing file"
            Expect.isEmpty (Directory.GetFileSystemEntries folder.Path) "nothing written by any failed report"
            let code, err = report (folder.File "no-such-run")
            Expect.equal code ExitCodes.BadConfiguration "missing folder: exit 2"
            Expect.stringContains err "no-such-run is not a folder" "names the folder"
        }
    ]
