/// An HTTP server on 127.0.0.1 that serves byte arrays by file name, for the download tests
/// (nothing leaves the machine). A file can be served cut short: the server announces the full
/// length, sends part of it and drops the connection, as a failing network does.
module TinyGrow.Datasets.Tests.LocalServer

open System
open System.Collections.Concurrent
open System.Net
open System.Net.Sockets
open System.Threading

type Reply =
    | Bytes of byte[]
    /// Announces the whole length, sends the first `sent` bytes, then aborts the connection.
    | CutShort of whole: byte[] * sent: int
    /// Announces the whole length, sends the first `sent` bytes, then sends nothing more until the
    /// server is disposed (a stalled connection).
    | Stall of whole: byte[] * sent: int

type LocalServer () =
    let files = ConcurrentDictionary<string, Reply> ()
    let requests = ConcurrentQueue<string> ()
    let listener, prefix =
        // A free port: bind port 0 to learn one, then listen there (retry on the rare race).
        let rec start attempt =
            let probe = new TcpListener (IPAddress.Loopback, 0)
            probe.Start ()
            let port = (probe.LocalEndpoint :?> IPEndPoint).Port
            probe.Stop ()
            let prefix = $"http://127.0.0.1:{port}/"
            let l = new HttpListener ()
            l.Prefixes.Add prefix
            try l.Start (); l, prefix
            with :? HttpListenerException when attempt < 5 -> start (attempt + 1)
        start 0
    let cancel = new CancellationTokenSource ()
    let serve (context: HttpListenerContext) =
        let name =
            match context.Request.Url with
            | null -> ""
            | url -> url.AbsolutePath.TrimStart '/' |> Uri.UnescapeDataString
        requests.Enqueue name
        let response = context.Response
        try
                match files.TryGetValue name with
                | true, Bytes data ->
                    response.ContentLength64 <- int64 data.Length
                    response.OutputStream.Write (data, 0, data.Length)
                    response.Close ()
                | true, CutShort (whole, sent) ->
                    response.ContentLength64 <- int64 whole.Length
                    response.OutputStream.Write (whole, 0, sent)
                    response.OutputStream.Flush ()
                    response.Abort ()
                | true, Stall (whole, sent) ->
                    response.ContentLength64 <- int64 whole.Length
                    response.OutputStream.Write (whole, 0, sent)
                    response.OutputStream.Flush ()
                    cancel.Token.WaitHandle.WaitOne (TimeSpan.FromSeconds 30.0) |> ignore
                    response.Abort ()
                | _ ->
                    response.StatusCode <- 404
                    response.Close ()
        with _ -> ()
    let loop =
        Thread ((fun () ->
            while not cancel.IsCancellationRequested do
                try
                    let context = listener.GetContext ()
                    ThreadPool.QueueUserWorkItem (fun _ -> serve context) |> ignore
                with _ -> ()), IsBackground = true)
    do loop.Start ()

    /// The server's address, ending in '/'.
    member _.Address = prefix
    /// Serves `reply` at /name.
    member _.Serve (name: string, reply: Reply) = files[name] <- reply
    /// File names requested so far, in order.
    member _.Requests = List.ofSeq requests
    interface IDisposable with
        member _.Dispose () =
            cancel.Cancel ()
            try listener.Stop (); listener.Close () with _ -> ()

/// An address where nothing listens: a port bound (so no other test can take it) but not
/// listening, so connections are refused at once, as an unreachable network looks.
type DeadAddress () =
    let socket = new Socket (AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)
    do socket.Bind (IPEndPoint (IPAddress.Loopback, 0))
    let port = match socket.LocalEndPoint with :? IPEndPoint as e -> e.Port | _ -> failwith "no local end point"
    member _.Address = $"http://127.0.0.1:{port}/"
    interface IDisposable with
        member _.Dispose () = socket.Dispose ()
