namespace TinyGrow.Growth.Linear

open Microsoft.Extensions.DependencyInjection
open TinyGrow.Abstractions

/// Plugin entry point: registers the dense layer kind and the mlp block.
type LinearPlugin() =
    interface IPluginModule with
        member _.ContractVersion = Contract.Version
        member _.Register(services) =
            services.AddSingleton<ILayerKind, DenseKind>() |> ignore
            services.AddSingleton<IBlockKind, MlpBlockKind>() |> ignore
