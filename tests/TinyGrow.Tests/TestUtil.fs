module TinyGrow.Tests.TestUtil

open System
open Microsoft.Extensions.Logging
open TorchSharp

/// A logger that keeps (level, message) of every entry, from any thread.
type RecordingLogger () =
    member val Entries = ResizeArray<LogLevel * string> () with get
    /// The messages logged at `level`, in order.
    member this.Messages (level: LogLevel) = lock this.Entries (fun () -> this.Entries |> Seq.filter (fun (l, _) -> l = level) |> Seq.map snd |> List.ofSeq)
    interface ILogger with
        member _.BeginScope<'TState when 'TState: not null> (_state: 'TState) : IDisposable | null = null
        member _.IsEnabled _ = true
        member this.Log<'TState> (level, _id, state: 'TState, error: exn | null, formatter: Func<'TState, exn | null, string>) =
            lock this.Entries (fun () -> this.Entries.Add ((level, formatter.Invoke (state, error))))

let f64 = torch.ScalarType.Float64

/// Largest absolute entry of a − b.
let maxAbsDiff (a: torch.Tensor) (b: torch.Tensor) =
    use d = (a - b).abs ()
    if d.numel () = 0L then 0.0 else d.max().item<float> ()

/// Deterministic float64 normal matrix.
let randn (seed: int64) (rows: int64) (cols: int64) =
    use g = new torch.Generator (uint64 seed)
    torch.randn ([| rows; cols |], dtype = f64, generator = g)

/// Float64 matrix from row-major values.
let mat (rows: int64) (cols: int64) (values: float[]) =
    use t = torch.tensor (values, dtype = f64)
    t.reshape (rows, cols)
