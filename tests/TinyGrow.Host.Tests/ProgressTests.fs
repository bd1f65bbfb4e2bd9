/// The progress display: which one a process uses (live on a terminal, log lines elsewhere), the
/// plain path's periodic lines, and what the live display shows, drawn on a Spectre console that
/// writes into a string.
module TinyGrow.Host.Tests.ProgressTests

open System
open System.IO
open Microsoft.Extensions.Logging
open Expecto
open Spectre.Console
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Host.Commands
open TinyGrow.Host.Progress
open TinyGrow.Host.Tests.TestUtil

/// A logger that keeps the formatted messages.
type private Lines() =
    let lines = Collections.Generic.List<string>()
    member _.All = List.ofSeq lines
    interface ILogger with
        member _.BeginScope _ = null
        member _.IsEnabled _ = true
        member _.Log(_, _, state, e, format) = lines.Add(format.Invoke(state, e))

/// A console without colours or cursor movement whose output is `writer`'s text.
let private consoleOn (writer: StringWriter) =
    AnsiConsole.Create(AnsiConsoleSettings(Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors, Interactive = InteractionSupport.No,
                                           Out = AnsiConsoleOutput writer))

/// Feeds a display the events of a run part-way through epoch 2 of 3, after one growth step.
let private partWay (p: IRunProgress) =
    p.Started(3, 10, 1, 0, [| 1; 1 |])
    for b in 1 .. 10 do p.Batch(1, b, 10, 1.0)
    p.Epoch(1, 3, 0.9, 0.8125, [| 1; 1 |])
    p.Growing(2, 0)
    p.Grown(0, 0, 4, [| 5; 1 |])
    p.Grown(0, 1, 6, [| 5; 7 |])
    for b in 1 .. 7 do p.Batch(2, b, 10, 0.5)

let tests =
    testList "progress" [
        test "auto is live only for run/resume with both outputs on a terminal that can redraw" {
            let choose setting verb outRedirected errRedirected (term: string | null) = ProgressDisplay.Choose(setting, verb, outRedirected, errRedirected, term)
            Expect.equal (choose "auto" Verb.Run false false "xterm-256color") ProgressMode.Live "run on a terminal"
            Expect.equal (choose "auto" Verb.Resume false false "screen") ProgressMode.Live "resume on a terminal"
            Expect.equal (choose "auto" Verb.Run true false "xterm") ProgressMode.Plain "stdout piped (make run | cat)"
            Expect.equal (choose "auto" Verb.Run false true "xterm") ProgressMode.Plain "stderr to a file"
            Expect.equal (choose "auto" Verb.Run false false "dumb") ProgressMode.Plain "TERM=dumb (an editor's shell)"
            Expect.equal (choose "auto" Verb.Run false false null) ProgressMode.Plain "no TERM (cron, systemd)"
            Expect.equal (choose "auto" Verb.Daemon false false "xterm") ProgressMode.Plain "the daemon logs, its jobs run piped"
            Expect.equal (choose "live" Verb.Daemon false false "xterm") ProgressMode.Plain "no live display for the daemon, even when asked"
            Expect.equal (choose "plain" Verb.Run false false "xterm") ProgressMode.Plain "--Output:Progress=plain on a terminal"
            Expect.equal (choose "live" Verb.Run true true null) ProgressMode.Live "--Output:Progress=live forces it"
        }

        test "Output:Progress accepts auto, live, plain and names the key otherwise" {
            for value in [ "auto"; "live"; "plain" ] do
                Expect.isEmpty (TinyGrow.Host.Configuration.SettingsValidator.Validate(settingsFrom (("Output:Progress", value) :: fixtureExperiment))) value
            let errors = TinyGrow.Host.Configuration.SettingsValidator.Validate(settingsFrom (("Output:Progress", "fancy") :: fixtureExperiment))
            Expect.exists errors (fun e -> contains e "Output:Progress" && contains e "auto, live or plain") $"{errors}"
        }

        test "the plain path logs a batch line once per interval, not per batch" {
            let every = Lines()
            let observer = ProgressLog(every, TimeSpan.Zero) :> IRunProgress
            partWay observer
            Expect.equal every.All.Length 17 "interval 0: a line per batch"
            Expect.equal (List.last every.All) "epoch 2 batch 7/10, loss 0.5000" "epoch, batch of batches, the epoch's loss so far"
            let hourly = Lines()
            partWay (ProgressLog(hourly, TimeSpan.FromHours 1.0))
            Expect.isEmpty hourly.All "within the interval: no line"
        }

        test "the live display shows the epoch, batch, loss, widths, growth by junction, last accuracy and downloads" {
            let display = LiveProgress(consoleOn (new StringWriter()))
            partWay display
            (display :> IDownloadProgress).Download("train-images.gz", 1_000_000L, Nullable 4_000_000L, false)
            use writer = new StringWriter()
            (consoleOn writer).Write(display.Render())
            let text = string writer
            for expected in [ "epoch"; "2/3"; "batch"; "7/10"; "loss 0.5000"; "widths"; "5/7"
                              "1 step"; "junction 0 +4 → 5"; "junction 1 +6 → 7"
                              "last epoch"; "1: train loss 0.9000, test accuracy 81.25 %"
                              "download"; "train-images.gz: 1.0 of 4.0 MB" ] do
                Expect.stringContains text expected $"shown:\n{text}"
        }

        test "a growth step in progress and the state before training are shown as such" {
            let display = LiveProgress(consoleOn (new StringWriter()))
            let render () =
                use writer = new StringWriter()
                (consoleOn writer).Write(display.Render())
                string writer
            Expect.stringContains (render ()) "loading the dataset" "before the run starts"
            display.Started(2, 5, 1, 0, [| 1 |])
            display.Growing(1, 0)
            Expect.stringContains (render ()) "step 1 running" "during the first growth step"
            Expect.stringContains (render ()) "0/5" "no batch trained yet"
            display.Grown(0, 0, 3, [| 4 |])
            for b in 1 .. 5 do display.Batch(1, b, 5, 0.7)
            display.Growing(2, 1)
            let text = render ()
            Expect.stringContains text "2/2" $"the step at epoch 2's start shows epoch 2 before its first batch:\n{text}"
            Expect.stringContains text "0/5" "and none of its batches"
            Expect.isFalse (contains text "loss 0.7000") "nor the last epoch's running loss"
        }

        test "log lines go through the display's console while it runs, and its last state stays" {
            use writer = new StringWriter()
            let display = LiveProgress(consoleOn writer)
            use provider = new LiveConsoleLoggerProvider(display)
            let log = provider.CreateLogger "TinyGrow.Test"
            log.LogInformation("before the display")
            display.Start() |> ignore
            partWay display
            log.LogWarning("while it runs: {Value}", 42)
            display.StopAsync().Wait()
            log.LogInformation("after it")
            let text = string writer
            for expected in [ "info: TinyGrow.Test[0] before the display"; "warn: TinyGrow.Test[0] while it runs: 42"
                              "info: TinyGrow.Test[0] after it"; "7/10" ] do
                Expect.stringContains text expected $"written:\n{text}"
            Expect.isLessThan (text.IndexOf "before the display") (text.IndexOf "while it runs") "in order"
            Expect.isLessThan (text.LastIndexOf "7/10") (text.IndexOf "after it") "the last state is drawn before the display stops"
        }
    ]
