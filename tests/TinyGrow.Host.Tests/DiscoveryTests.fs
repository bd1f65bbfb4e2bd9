/// Plugin discovery and the catalogue, on fixture plugins laid out in temporary folders.
module TinyGrow.Host.Tests.DiscoveryTests

open System.IO
open Expecto
open TinyGrow.Abstractions
open TinyGrow.Host.Plugins
open TinyGrow.Host.Tests.TestUtil

let private problemsText (result: DiscoveryResult) =
    result.Problems |> Seq.map (fun p -> p.Message) |> String.concat "\n"

let tests =
    testList "plugin discovery" [
        test "finds the good plugin; the catalogue lists and resolves its names" {
            use tmp = new TempFolder()
            let dll = addFixture tmp.Path "Fixture.GoodPlugin"
            let result, catalogue = discover [ tmp.Path ]
            Expect.isEmpty result.Problems "no refusals"
            let plugin = Expect.wantSome (result.Plugins |> Seq.tryExactlyOne) "one plugin"
            Expect.equal plugin.Name "Fixture.GoodPlugin" "plugin name"
            Expect.equal plugin.Path dll "plugin file"
            Expect.equal plugin.Version "1.2.3" "informational version"
            let listed = catalogue.Entries |> Seq.map (fun e -> e.Kind, e.Name, e.Plugin.Name) |> Set.ofSeq
            Expect.equal listed (Set [ PluginCatalogue.StrategyKind, "fixture-strategy", "Fixture.GoodPlugin"
                                       PluginCatalogue.LayerKindKind, "fixture-kind", "Fixture.GoodPlugin"
                                       PluginCatalogue.DatasetKind, "fixture-data", "Fixture.GoodPlugin" ]) "listed"
            let strategy = catalogue.GetStrategy "fixture-strategy"
            Expect.equal strategy.Name "fixture-strategy" "resolved by name"
            Expect.equal ((catalogue.GetStrategy "Fixture-Strategy").Name) "fixture-strategy" "names are case-insensitive like configuration keys"
            Expect.throwsT<System.NotSupportedException> (fun () -> strategy.Propose Unchecked.defaultof<GrowthRequest> |> ignore) "the plugin's own code runs"
            Expect.isTrue (catalogue.LayerKinds.ContainsKey "fixture-kind") "layer kinds for the engine"
            Expect.equal ((catalogue.GetDatasetProvider "fixture-data").Names |> Seq.toList) [ "fixture-data" ] "dataset provider"
        }

        test "a plugin built for another contract version is refused by name; the good one loads" {
            use tmp = new TempFolder()
            addFixture tmp.Path "Fixture.GoodPlugin" |> ignore
            let other = addFixture tmp.Path "Fixture.OtherContract"
            let result, catalogue = discover [ tmp.Path ]
            let problem = Expect.wantSome (result.Problems |> Seq.tryExactlyOne) "one refusal"
            Expect.equal problem.Path other "names the file"
            Expect.stringContains problem.Message "Fixture.OtherContract" "names the plugin"
            Expect.stringContains problem.Message $"contract v999, host speaks v{Contract.Version}" "says why"
            Expect.stringContains problem.Message $"rebuild it against this host's packages (make pack: TinyGrow.Abstractions 1.0.0, contract v{Contract.Version})" "says the fix, with the package version a plugin references"
            Expect.equal (result.Plugins |> Seq.map (fun p -> p.Name) |> List.ofSeq) [ "Fixture.GoodPlugin" ] "good plugin loaded"
            Expect.equal ((catalogue.GetStrategy "fixture-strategy").Name) "fixture-strategy" "still usable"
        }

        test "a corrupt DLL is refused by name; the others load" {
            use tmp = new TempFolder()
            let broken = addCorrupt tmp.Path "Broken"
            addFixture tmp.Path "Fixture.GoodPlugin" |> ignore
            addFixture tmp.Path "Fixture.OtherContract" |> ignore
            let result, _ = discover [ tmp.Path ]
            let problem = Expect.wantSome (result.Problems |> Seq.tryFind (fun p -> p.Path = broken)) "Broken refused"
            Expect.stringContains problem.Message "Broken.dll" "names the file"
            Expect.stringContains problem.Reason "not a valid .NET assembly" "says why"
            Expect.equal result.Problems.Count 2 "Broken and the other-contract plugin"
            Expect.equal (result.Plugins |> Seq.map (fun p -> p.Name) |> List.ofSeq) [ "Fixture.GoodPlugin" ] "good plugin loaded"
        }

        test "a FIFO in a plugin's DLL place is refused by name, without waiting for a writer; the others load" {
            use tmp = new TempFolder()
            let folder = Directory.CreateDirectory(Path.Combine(tmp.Path, "Piped")).FullName
            let fifo = Path.Combine(folder, "Piped.dll")
            use mkfifo = System.Diagnostics.Process.Start("mkfifo", [ fifo ])
            mkfifo.WaitForExit()
            addFixture tmp.Path "Fixture.GoodPlugin" |> ignore
            // On a worker with a deadline: opening the FIFO would block the test run for ever.
            let discovery = System.Threading.Tasks.Task.Run(fun () -> discover [ tmp.Path ])
            Expect.isTrue (discovery.Wait(System.TimeSpan.FromSeconds 30.0)) "discovery returns (it did not open the FIFO)"
            let result, _ = discovery.Result
            let problem = Expect.wantSome (result.Problems |> Seq.tryFind (fun p -> p.Path = fifo)) "the FIFO refused"
            Expect.stringContains problem.Reason "a FIFO (named pipe), not a DLL file" "says what it is"
            Expect.stringContains problem.Message "replace" "says the fix"
            Expect.equal (result.Plugins |> Seq.map (fun p -> p.Name) |> List.ofSeq) [ "Fixture.GoodPlugin" ] "the good plugin loaded"
        }

        test "a folder without <Name>.dll and a missing Plugins:Folders entry are reported; a missing default folder is not" {
            use tmp = new TempFolder()
            let misnamed = Directory.CreateDirectory(Path.Combine(tmp.Path, "plugins", "Misnamed")).FullName
            File.Copy(fixtureDll "Fixture.GoodPlugin", Path.Combine(misnamed, "Other.dll"))
            let missingExtra = tmp.File "no-such-folder"
            let result, _ = discover [ tmp.File "no-default-folder"; Path.Combine(tmp.Path, "plugins"); missingExtra ]
            let text = problemsText result
            Expect.stringContains text "Misnamed.dll" "says which DLL the folder should hold"
            Expect.stringContains text missingExtra "names the missing extra folder"
            Expect.isFalse (contains text "no-default-folder") "the default folder may be absent"
            Expect.isFalse (contains text "several folders are a list") "a plain missing path gets no list hint"
            Expect.isEmpty result.Plugins "nothing loaded"
            // two folders written as one value
            let joined, _ = discover [ tmp.File "none"; tmp.File "a" + "," + tmp.File "b" ]
            Expect.stringContains (problemsText joined) "--Plugins:Folders:0=/a --Plugins:Folders:1=/b" "a comma-joined value: how to give a list"
        }

        test "a DLL lying loose in a plugins folder, or a folder holding another DLL, is refused with where it belongs" {
            use tmp = new TempFolder()
            let loose = tmp.File "Fixture.GoodPlugin.dll"
            File.Copy(fixtureDll "Fixture.GoodPlugin", loose)
            let misnamed = Directory.CreateDirectory(tmp.File "good").FullName
            File.Copy(fixtureDll "Fixture.GoodPlugin", Path.Combine(misnamed, "Fixture.GoodPlugin.dll"))
            let empty = Directory.CreateDirectory(tmp.File "Empty").FullName
            let result, _ = discover [ tmp.Path ]
            Expect.isEmpty result.Plugins "nothing loaded"
            let problem path = Expect.wantSome (result.Problems |> Seq.tryFind (fun p -> p.Path = path)) $"{path} refused"
            let l = problem loose
            Expect.stringContains l.Reason "lying loose" "says why"
            Expect.stringContains l.Reason (Path.Combine(tmp.Path, "Fixture.GoodPlugin", "Fixture.GoodPlugin.dll")) "says where it belongs"
            Expect.stringContains l.Fix ("mkdir " + Path.Combine(tmp.Path, "Fixture.GoodPlugin")) "says how"
            let m = problem misnamed
            Expect.stringContains m.Reason "no good.dll in it" "names the DLL the folder should hold"
            Expect.stringContains m.Reason "it holds Fixture.GoodPlugin.dll" "and what it holds"
            Expect.stringContains m.Fix "rename the folder to Fixture.GoodPlugin" "the one DLL names the folder"
            Expect.stringContains (problem empty).Reason "no DLL at all" "an empty folder"
            Expect.stringContains (problem empty).Fix "copy the plugin's build output" "an empty folder needs the build output, not a new name"
        }

        test "a plugin with its private dependency beside it loads, and its strategy (named by the dependency) is listed" {
            use tmp = new TempFolder()
            let dll = addFixtureOutput tmp.Path "Fixture.NeedsLibrary"
            Expect.isTrue (File.Exists(Path.Combine(tmp.Path, "Fixture.NeedsLibrary", "Fixture.Library.dll"))) "the library is laid out beside the plugin"
            let result, catalogue = discover [ tmp.Path ]
            Expect.isEmpty result.Problems "no refusals"
            Expect.equal (result.Plugins |> Seq.map (fun p -> p.Path) |> List.ofSeq) [ dll ] "the plugin loaded"
            let entry = Expect.wantSome (catalogue.Entries |> Seq.tryExactlyOne) "one name served"
            Expect.equal (entry.Kind, entry.Name) (PluginCatalogue.StrategyKind, "library-strategy") "its strategy, named by code in the library"
        }

        test "a plugin whose private dependency is missing is refused at load, naming the DLL, the assembly and version, and the fix; the others load" {
            // With its deps.json listing the library (a build output copied without it), and the DLL alone.
            for withDepsJson in [ true; false ] do
                use tmp = new TempFolder()
                let dll =
                    if withDepsJson then
                        let dll = addFixtureOutput tmp.Path "Fixture.NeedsLibrary"
                        File.Delete(Path.Combine(tmp.Path, "Fixture.NeedsLibrary", "Fixture.Library.dll"))
                        Expect.isTrue (File.Exists(Path.Combine(tmp.Path, "Fixture.NeedsLibrary", "Fixture.NeedsLibrary.deps.json"))) "its deps.json is there"
                        dll
                    else addFixture tmp.Path "Fixture.NeedsLibrary"
                addFixture tmp.Path "Fixture.GoodPlugin" |> ignore
                let result, catalogue = discover [ tmp.Path ]
                let problem = Expect.wantSome (result.Problems |> Seq.tryExactlyOne) $"one refusal (deps.json: {withDepsJson}): {problemsText result}"
                Expect.equal problem.Path dll "names the plugin DLL"
                Expect.stringContains problem.Reason "Fixture.NeedsLibrary.dll references Fixture.Library 2.5.0.0" "names the missing assembly and its version"
                Expect.stringContains problem.Reason "neither in" "says it is not there"
                Expect.equal problem.Fix "copy Fixture.Library.dll next to Fixture.NeedsLibrary.dll, or publish the plugin with `dotnet publish` and copy the publish folder (which holds it)" "the fix"
                Expect.equal (result.Plugins |> Seq.map (fun p -> p.Name) |> List.ofSeq) [ "Fixture.GoodPlugin" ] "the other plugin still loads"
                Expect.isFalse (catalogue.Entries |> Seq.exists (fun e -> e.Name = "library-strategy")) "the refused plugin serves nothing"
                Expect.equal ((catalogue.GetStrategy "fixture-strategy").Name) "fixture-strategy" "the other plugin's names are served"
                use output = new StringWriter()
                Expect.equal (TinyGrow.Host.Commands.PluginsCommand(catalogue, result).Execute output) TinyGrow.Host.ExitCodes.Ok "plugins: exit 0"
                let refused = Expect.wantSome (output.ToString().Split('\n') |> Array.tryFind (fun l -> l.StartsWith "Refused:" && contains l dll)) $"`tinygrow plugins` lists it under Refused: {output}"
                Expect.stringContains refused "Fixture.Library 2.5.0.0" "with the missing assembly"
                Expect.stringContains refused "Fix: copy Fixture.Library.dll next to Fixture.NeedsLibrary.dll" "and the fix"
        }

        test "a run selecting what only the refused plugin serves exits 2 at start-up with the refusal, before any run folder is written" {
            use plugins = new TempFolder()
            use output = new TempFolder()
            addFixture plugins.Path "Fixture.NeedsLibrary" |> ignore
            addFixture plugins.Path "Fixture.GoodPlugin" |> ignore
            let _, catalogue = discover [ plugins.Path ]
            let runs = output.File "runs"
            let settings = settingsFrom (fixtureExperiment @ [ "Growth:Strategy", "library-strategy"; "Output:Directory", runs ])
            use errors = new StringWriter()
            let exit =
                TinyGrow.Host.Commands.RunCommand(settings, catalogue, Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance,
                                                  System.TimeProvider.System, ErrorOutput = errors).ExecuteAsync(System.Threading.CancellationToken.None)
                |> Async.AwaitTask |> Async.RunSynchronously
            Expect.equal exit TinyGrow.Host.ExitCodes.BadConfiguration "exit 2, as for any name no plugin serves"
            let message = errors.ToString()
            Expect.stringContains message "Growth:Strategy = 'library-strategy'" "names the key and value"
            Expect.stringContains message "Fixture.NeedsLibrary.dll references Fixture.Library 2.5.0.0" "and the refusal"
            Expect.stringContains message "copy Fixture.Library.dll next to Fixture.NeedsLibrary.dll" "with its fix"
            Expect.isFalse (Directory.Exists runs) "nothing written"
        }

        test "a name served twice: the first plugin wins and the warning names both files" {
            use first = new TempFolder()
            use second = new TempFolder()
            let firstDll = addFixture first.Path "Fixture.GoodPlugin"
            let secondDll = addFixture second.Path "Fixture.GoodPlugin"
            let result, catalogue = discover [ first.Path; second.Path ]
            Expect.equal result.Plugins.Count 2 "both files load"
            let warning = Expect.wantSome (catalogue.Warnings |> Seq.tryFind (fun w -> contains w "'fixture-strategy'")) "a warning for the strategy"
            Expect.stringContains warning firstDll "names the first file"
            Expect.stringContains warning secondDll "names the second file"
            let owner = catalogue.Entries |> Seq.find (fun e -> e.Name = "fixture-strategy")
            Expect.equal owner.Plugin.Path firstDll "first wins"
        }

        test "an unknown strategy name lists the available names and where plugins are searched" {
            use tmp = new TempFolder()
            addFixture tmp.Path "Fixture.GoodPlugin" |> ignore
            let _, catalogue = discover [ tmp.Path ]
            let e = thrown (fun () -> catalogue.GetStrategy "nope" |> ignore)
            Expect.isTrue (e :? UnknownPluginNameException) "the catalogue's exception"
            Expect.stringContains e.Message "'nope'" "names what was asked"
            Expect.stringContains e.Message "Available: fixture-strategy" "lists what there is"
            Expect.stringContains e.Message tmp.Path "says where plugins are searched"
        }

        test "search folders: plugins/ beside the executable first, relative extras against the current directory, no duplicates" {
            let folders = PluginDiscovery.SearchFolders("/app", [ "extra"; "/abs/p/"; "/abs/p"; "" ], "/work")
            Expect.equal (List.ofSeq folders) [ "/app/plugins"; "/work/extra"; "/abs/p" ] "folders"
        }
    ]
