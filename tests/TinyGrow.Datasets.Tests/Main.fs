module TinyGrow.Datasets.Tests.Main

open Expecto

let tests =
    testList "TinyGrow.Datasets" [
        MnistTests.tests
        CifarTests.tests
        DownloadTests.tests
        AugmentationTests.tests
        FuzzTests.tests
        LimitsTests.tests
    ]

[<EntryPoint>]
let main argv = runTestsWithCLIArgs [] argv tests
