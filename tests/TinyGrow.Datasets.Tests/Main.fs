module TinyGrow.Datasets.Tests.Main

open Expecto

let tests =
    testList "TinyGrow.Datasets" [
        MnistTests.tests
    ]

[<EntryPoint>]
let main argv = runTestsWithCLIArgs [] argv tests
