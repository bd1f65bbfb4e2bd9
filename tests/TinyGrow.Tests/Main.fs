module TinyGrow.Tests.Main

open Expecto

let all =
    testList "TinyGrow" [
        TorchLoadTests.tests
        StatisticsTests.tests
        BottleneckTests.tests
        WhiteningTests.tests
        RandomizedFactorTests.tests
        InputStatisticsCacheTests.tests
        InputCovariancesAheadTests.tests
        GrowthTests.tests
        OptimizerTests.tests
        GrowthRunTests.tests
        EngineTests.tests
        TrainingStatisticsTests.tests
        DenseKindTests.tests
        ConvTests.tests
        ConvFullTests.tests
        NewUnitsTests.tests
        DenseNewUnitsTests.tests
        ConvGeometryTests.tests
        ProposalCheckTests.tests
        CheckpointWriteTests.tests
        ComputeThreadsTests.tests
        AmplitudeTests.tests
        SearchResumeTests.tests
        HeldOutAcceptanceTests.tests
        CrossValidationRowsTests.tests
        StrategyTests.tests
        PyTorchExportTests.tests
        SignificanceTests.tests
        BenchTests.tests
    ]

[<EntryPoint>]
let main argv = runTestsWithCLIArgs [] argv all
