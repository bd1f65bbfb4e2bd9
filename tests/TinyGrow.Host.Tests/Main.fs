module TinyGrow.Host.Tests.Main

open Expecto

let all =
    testList "TinyGrow.Host" [
        DiscoveryTests.tests
        ConfigurationTests.tests
        CommandTests.tests
        RunFolderTests.tests
        EndToEndTests.tests
        SettingsFileTests.tests
        ExperimentTests.tests
        RunGuardTests.tests
        MetricsSchemaTests.tests
        ProvenanceTests.tests
        ReportTests.tests
        DaemonTests.tests
        CheckpointTests.tests
        RunFolderWriterTests.tests
        InputCacheProcessTests.tests
        PostgresQueueTests.tests
        DaemonResumeTests.tests
        TemplateTests.tests
        SlurmTests.tests
        ProgressTests.tests
        DeployTests.tests
        ReadyToRunTests.tests
        DocsTests.tests
    ]

[<EntryPoint>]
let main argv = runTestsWithCLIArgs [] argv all
