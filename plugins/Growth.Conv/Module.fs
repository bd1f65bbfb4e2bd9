namespace TinyGrow.Growth.Conv

open Microsoft.Extensions.DependencyInjection
open TinyGrow.Abstractions

/// Plugin entry point: the conv layer kind, the cnn block (list form) and ResNet's blocks.
type ConvPlugin() =
    interface IPluginModule with
        member _.ContractVersion = Contract.Version
        member _.Register(services) =
            services.AddSingleton<ILayerKind, ConvKind>() |> ignore
            services.AddSingleton<IBlockKind, CnnBlockKind>() |> ignore
            services.AddSingleton<IBlockKind, ResNetStemKind>() |> ignore
            services.AddSingleton<IBlockKind, BasicBlockKind>() |> ignore
            services.AddSingleton<IBlockKind, ResNetHeadKind>() |> ignore
