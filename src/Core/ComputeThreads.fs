/// How many intra-op CPU threads a run uses (Training:Threads). libtorch's OpenMP pool defaults to
/// one thread per core; a parallel kernel waits at a barrier for its slowest thread, so on a machine
/// whose cores are shared with other jobs, or for kernels as small as a dense layer's at batch 128,
/// the extra threads cost more than they do. Measured on this 2-core VM
/// (docs/notebook/2026-11-30-cpu-threads.md): the default Fashion-MNIST MLP runs 1.4-2x faster on one thread, the growth step's
/// eigh of a 216² matrix 5-8x faster, while a CNN's convolutions gain from two threads (1.3x).
module TinyGrow.Core.ComputeThreads

open TorchSharp
open TinyGrow.Abstractions

/// libtorch's own choice, read once before any run changes it (a daemon runs many jobs in one process).
let private libtorchDefault = lazy (torch.get_num_threads ())

/// Whether every growable layer of the network is dense (no convolution anywhere).
let denseOnly (net: Network) =
    net.Junctions |> Array.forall (fun j -> j.A.Kind = "dense" && j.B.Kind = "dense")

/// The thread count for `requested` (Training:Threads; 0: auto), given the device and the network,
/// with the reason, for the log.
let choose (requested: int) (onCpu: bool) (denseOnly: bool) (libtorchDefault: int) : int * string =
    if requested > 0 then requested, "Training:Threads"
    elif onCpu && denseOnly then 1, "auto: a network of dense layers on the CPU"
    else libtorchDefault, (if onCpu then "auto: libtorch's default, one per core" else "auto: libtorch's default (the GPU does the work)")

/// The thread count a run of `net` uses on `device`, with the reason (see `choose`).
let forRun (training: TrainingOptions) (device: torch.Device) (net: Network) : int * string =
    choose training.Threads (device.``type`` = DeviceType.CPU) (denseOnly net) libtorchDefault.Value

/// Whether `cores` leave as many idle beside `threads` training threads as training takes: work beside the run
/// (the input covariances ahead, the γ search's samples kept while a strategy proposes) then runs on its own cores.
let spareBeside (cores: int) (threads: int) = cores - threads >= threads

/// Sets the intra-op threads of the calling thread's torch operations. libtorch keeps them per thread (OpenMP's
/// and MKL's settings are the thread's) but also stores the last value set by any thread, which a thread takes
/// at its first parallel operation, overwriting what it had set before: the read in between makes that happen
/// now, so that another thread setting its own count later (InputCovariancesAhead) leaves this one's alone.
let setForThisThread (threads: int) =
    torch.set_num_threads threads
    torch.get_num_threads () |> ignore
    torch.set_num_threads threads

/// Sets the intra-op threads of the calling thread's torch operations for this run; returns what it chose and why.
let apply (training: TrainingOptions) (device: torch.Device) (net: Network) : int * string =
    let threads, why = forRun training device net
    setForThisThread threads
    threads, why
