using Microsoft.Extensions.DependencyInjection;
using TinyGrow.Abstractions;

namespace Fixture.OtherContract;

/// <summary>Built "for contract v999": Register must never be called.</summary>
public sealed class OtherContractModule : IPluginModule
{
    public int ContractVersion => 999;

    public void Register(IServiceCollection services) =>
        throw new InvalidOperationException("the host called Register on a plugin of another contract version");
}
