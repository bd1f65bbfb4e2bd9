namespace TinyGrow.Growth.Strategies

open Microsoft.Extensions.DependencyInjection
open TinyGrow.Abstractions

/// Plugin entry point: registers the growth strategies.
type StrategiesPlugin() =
    interface IPluginModule with
        member _.ContractVersion = Contract.Version
        member _.Register(services) =
            services.AddSingleton<IGrowthStrategy, TinyStrategy>() |> ignore
