namespace TinyGrow.Growth.Strategies

open Microsoft.Extensions.DependencyInjection
open TinyGrow.Abstractions

/// Plugin entry point: registers the growth strategies (tiny, gradmax, random).
type StrategiesPlugin() =
    interface IPluginModule with
        member _.ContractVersion = Contract.Version
        member _.Register(services) =
            services.AddSingleton<IGrowthStrategy, TinyStrategy>() |> ignore
            services.AddSingleton<IGrowthStrategy, GradMaxStrategy>() |> ignore
            services.AddSingleton<IGrowthStrategy, RandomStrategy>() |> ignore
