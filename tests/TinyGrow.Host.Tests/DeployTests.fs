/// deploy/kubernetes/tinygrow-job.yaml is not run here (no cluster): it is parsed, and the fields a
/// resumable, one-experiment-per-index GPU job depends on are checked against each other and against
/// the application (its stop grace, its exit codes).
module TinyGrow.Host.Tests.DeployTests

open System
open System.IO
open Expecto
open YamlDotNet.RepresentationModel
open TinyGrow.Host
open TinyGrow.Host.Commands

let private manifest =
    Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "..", "deploy", "kubernetes", "tinygrow-job.yaml"))

/// The node at `path` (mapping keys; an integer picks a sequence element); fails naming the path.
let rec private at (node: YamlNode) (path: string list) : YamlNode =
    match path with
    | [] -> node
    | key :: rest ->
        let next =
            match node, Int32.TryParse key with
            | (:? YamlSequenceNode as s), (true, i) when i < s.Children.Count -> Some s.Children[i]
            | (:? YamlMappingNode as m), _ ->
                match m.Children.TryGetValue(YamlScalarNode key) with
                | true, v -> Some v
                | _ -> None
            | _ -> None
        match next with
        | Some n -> at n rest
        | None -> failtest $"{manifest}: no '{key}' where {String.Join('.', path)} was expected"

let private text (node: YamlNode) path = string (at node path :?> YamlScalarNode).Value

let private documents () =
    let stream = YamlStream()
    use reader = new StreamReader(manifest)
    stream.Load reader
    [ for d in stream.Documents -> d.RootNode ]

let private ofKind (kind: string) =
    match documents () |> List.filter (fun d -> text d [ "kind" ] = kind) with
    | [ one ] -> one
    | found -> failtest $"{manifest}: expected one {kind}, found {found.Length}"

let tests =
    testList "kubernetes manifest" [
        test "an Indexed Job with one experiment per index, a GPU per pod, run folders on the claim" {
            let job = ofKind "Job"
            let experiments = ofKind "ConfigMap"
            let claim = ofKind "PersistentVolumeClaim"
            Expect.equal (text job [ "spec"; "completionMode" ]) "Indexed" "indexed completions"
            let completions = int (text job [ "spec"; "completions" ])
            let keys = [ for kv in (at experiments [ "data" ] :?> YamlMappingNode).Children -> string (kv.Key :?> YamlScalarNode).Value ]
            Expect.sequenceEqual (List.sort keys) [ for i in 0 .. completions - 1 -> $"experiment-{i}.json" ] "one experiment per index"
            let pod = at job [ "spec"; "template"; "spec" ]
            let container = at pod [ "containers"; "0" ]
            Expect.equal (text container [ "resources"; "limits"; "nvidia.com/gpu" ]) "1" "one GPU per pod"
            let mount (name: string) =
                (at container [ "volumeMounts" ] :?> YamlSequenceNode).Children
                |> Seq.find (fun m -> text m [ "name" ] = name)
            let volume (name: string) =
                (at pod [ "volumes" ] :?> YamlSequenceNode).Children |> Seq.find (fun v -> text v [ "name" ] = name)
            Expect.equal (text (mount "runs") [ "mountPath" ]) "/runs" "run folders under /runs"
            Expect.equal (text (volume "runs") [ "persistentVolumeClaim"; "claimName" ]) (text claim [ "metadata"; "name" ]) "on the claim"
            Expect.equal (text (volume "experiments") [ "configMap"; "name" ]) (text experiments [ "metadata"; "name" ]) "experiments from the ConfigMap"
            let script = text container [ "args"; "0" ]
            for part in [ "JOB_COMPLETION_INDEX"; "resume \"$folder.partial\""; "/experiments/${id}.json"; "--Output:Directory=/runs"; "--Output:RunId=\"$id\"" ] do
                Expect.stringContains script part "the pod picks its experiment and folder from its index, and resumes a .partial folder"
        }

        test "a stopped pod has time to checkpoint and is replaced, not counted as done or failed" {
            let job = ofKind "Job"
            let pod = at job [ "spec"; "template"; "spec" ]
            let grace = float (text pod [ "terminationGracePeriodSeconds" ])
            Expect.isGreaterThan grace (RunCommand.StopGrace.TotalSeconds + 5.0) "longer than the run's own stop grace plus a checkpoint's write"
            Expect.equal (text pod [ "restartPolicy" ]) "Never" "podFailurePolicy needs Never"
            let rules = (at job [ "spec"; "podFailurePolicy"; "rules" ] :?> YamlSequenceNode).Children
            Expect.exists rules (fun r -> text r [ "action" ] = "Ignore" && text r [ "onPodConditions"; "0"; "type" ] = "DisruptionTarget")
                "a drained or preempted pod does not count against the index"
            Expect.exists rules (fun r -> text r [ "action" ] = "FailIndex" && text r [ "onExitCodes"; "values"; "0" ] = string ExitCodes.BadConfiguration)
                "a bad experiment (exit 2) is not retried"
            let script = text (at pod [ "containers"; "0" ]) [ "args"; "0" ]
            Expect.stringContains script "trap 'kill -TERM" "SIGTERM is passed on to tinygrow"
            Expect.stringContains script "exit 75" "a run stopped at a checkpoint (exit 0) is not reported as complete"
        }
    ]
