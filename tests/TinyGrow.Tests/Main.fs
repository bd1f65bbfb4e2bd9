module TinyGrow.Tests.Main

open Expecto

let all =
    testList "TinyGrow" [
        TorchLoadTests.tests
    ]

[<EntryPoint>]
let main argv = runTestsWithCLIArgs [] argv all
