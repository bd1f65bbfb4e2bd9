using System.Reflection;
using McMaster.NETCore.Plugins;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using TinyGrow.Abstractions;
using TinyGrow.Host.Configuration;

namespace TinyGrow.Host.Plugins;

/// <summary>
/// Finds plugins laid out as <c>&lt;folder&gt;/&lt;Name&gt;/&lt;Name&gt;.dll</c>, loads each in its own load
/// context sharing the host's TorchSharp, FSharp.Core, Abstractions, Core, Datasets, DI and logging (a second
/// TorchSharp in one process aborts it), and lets each <see cref="IPluginModule"/> register its
/// services. A plugin that cannot be used is refused with a <see cref="PluginProblem"/> and the
/// others still load: one bad DLL in <c>plugins/</c> must not take the host down.
/// </summary>
public static class PluginDiscovery
{
    /// <summary>Types whose assemblies every plugin takes from the host.</summary>
    public static readonly Type[] SharedTypes =
    [
        typeof(IPluginModule), typeof(TorchSharp.torch), typeof(Microsoft.FSharp.Core.Unit),
        typeof(TinyGrow.Core.GrowthEngine), typeof(TinyGrow.Datasets.Images.ImagePipeline),
        typeof(IServiceCollection), typeof(ILogger),
    ];

    /// <summary><c>plugins/</c> beside the executable, then each extra folder (relative ones resolved
    /// against <paramref name="currentDirectory"/>); absolute, without duplicates.</summary>
    public static IReadOnlyList<string> SearchFolders(string appDirectory, IEnumerable<string> extraFolders, string currentDirectory) =>
        extraFolders
            .Where(f => !string.IsNullOrWhiteSpace(f))
            .Select(f => Path.GetFullPath(f, currentDirectory))
            .Prepend(Path.GetFullPath(Path.Combine(appDirectory, "plugins")))
            .Select(f => Path.TrimEndingDirectorySeparator(f))
            .Distinct(StringComparer.Ordinal)
            .ToList();

    /// <summary>Loads every plugin found in <paramref name="folders"/> and adds the services of those
    /// accepted to <paramref name="services"/>.</summary>
    /// <param name="folders">Absolute folders; the first is the default one (its absence is not a problem).</param>
    /// <param name="services">Receives the plugins' registrations.</param>
    public static DiscoveryResult Discover(IReadOnlyList<string> folders, IServiceCollection services)
    {
        var plugins = new List<DiscoveredPlugin>();
        var registrations = new List<PluginRegistration>();
        var problems = new List<PluginProblem>();
        var loaders = new List<PluginLoader>();

        for (var i = 0; i < folders.Count; i++)
        {
            var folder = folders[i];
            if (!Directory.Exists(folder))
            {
                if (i > 0)
                    problems.Add(new(folder, "the folder listed in Plugins:Folders does not exist",
                        "correct the path in Plugins:Folders (relative paths are resolved against the current directory) or remove it" +
                        // "/a,/b" or "/a:/b" is one value, not two folders
                        (folder.Contains(',') || folder.Contains(':') ? "; several folders are a list: --Plugins:Folders:0=/a --Plugins:Folders:1=/b" : "")));
                continue;
            }
            // A DLL dropped straight into the plugins folder is the usual first attempt: say where it belongs.
            foreach (var loose in Directory.GetFiles(folder, "*.dll").Order(StringComparer.Ordinal))
            {
                var name = Path.GetFileNameWithoutExtension(loose);
                problems.Add(new(loose, $"a DLL lying loose in the plugins folder is not loaded (a plugin is {Path.Combine(folder, name, name + ".dll")}, in a folder of its own, with its private dependencies beside it)",
                    $"move it into a folder named after it: mkdir {Path.Combine(folder, name)} && mv {loose} {Path.Combine(folder, name)}/"));
            }
            foreach (var pluginFolder in Directory.GetDirectories(folder).Order(StringComparer.Ordinal))
            {
                var name = Path.GetFileName(pluginFolder);
                var dll = Path.Combine(pluginFolder, name + ".dll");
                if (!File.Exists(dll))
                {
                    var found = Directory.GetFiles(pluginFolder, "*.dll").Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
                    problems.Add(new(pluginFolder,
                        $"no {name}.dll in it (a plugin folder <Name>/ must hold <Name>.dll; " +
                        (found.Count == 0 ? "it holds no DLL at all)" : $"it holds {string.Join(", ", found.Take(5))}{(found.Count > 5 ? ", …" : "")})"),
                        found.Count switch
                        {
                            0 => $"copy the plugin's build output (bin/Release/net10.0/*, its <Name>.dll and private dependencies) into {pluginFolder}, naming the folder after the DLL, or remove the folder",
                            1 => $"rename the folder to {Path.GetFileNameWithoutExtension(found[0])} (the plugin's main DLL), or remove the folder",
                            _ => "rename the folder after the plugin's main DLL (the one with its IPluginModule), or remove the folder",
                        }));
                    continue;
                }
                Load(name, dll, services, plugins, registrations, problems, loaders);
            }
        }
        return new DiscoveryResult(folders, plugins, registrations, problems, loaders);
    }

    static void Load(string name, string dll, IServiceCollection services, List<DiscoveredPlugin> plugins,
        List<PluginRegistration> registrations, List<PluginProblem> problems, List<PluginLoader> loaders)
    {
        // Reasons are followed by ". Fix: …": an exception message's own final period would double it.
        void Refuse(string reason, string fix) => problems.Add(new(dll, reason.TrimEnd().TrimEnd('.'), fix));

        // Asked without opening it: loading a FIFO in the DLL's place would wait for a writer for ever.
        if (FileKind.Of(dll).Kind is { } kind)
        {
            Refuse($"it is {kind}, not a DLL file", $"replace {dll} with the plugin's built DLL, or remove {Path.GetDirectoryName(dll)}");
            return;
        }
        PluginLoader loader;
        Assembly assembly;
        Type[] types;
        try
        {
            loader = PluginLoader.CreateFromAssemblyFile(dll, SharedTypes, config => config.PreferSharedTypes = true);
            assembly = loader.LoadDefaultAssembly();
            // Before its types: a public type built on a missing assembly would fail there with a less useful message.
            if (UnresolvedReferences(loader, assembly, dll) is { } unresolved)
            {
                Refuse(unresolved.Reason, unresolved.Fix);
                return;
            }
            types = assembly.GetExportedTypes();
        }
        catch (BadImageFormatException e)
        {
            Refuse($"not a valid .NET assembly ({e.Message})", $"rebuild the plugin, or delete {Path.GetDirectoryName(dll)}");
            return;
        }
        catch (Exception e) when (e is TypeLoadException or ReflectionTypeLoadException or FileNotFoundException or FileLoadException or MissingMethodException)
        {
            Refuse($"its types cannot be loaded ({FirstLoaderMessage(e)})",
                "rebuild it against this host's TinyGrow.Abstractions, TinyGrow.Core, TorchSharp and FSharp.Core, and ship its own dependencies in its folder");
            return;
        }
        catch (Exception e)
        {
            Refuse($"it cannot be loaded ({e.GetType().Name}: {e.Message})", "rebuild the plugin or remove its folder");
            return;
        }
        loaders.Add(loader);

        var moduleTypes = types.Where(t => t.IsClass && !t.IsAbstract && typeof(IPluginModule).IsAssignableFrom(t)).ToList();
        if (moduleTypes.Count == 0)
        {
            var foreign = types.Any(t => t.GetInterfaces().Any(x => x.FullName == typeof(IPluginModule).FullName));
            Refuse(foreign
                    ? "its IPluginModule comes from another copy of TinyGrow.Abstractions"
                    : "it has no public class implementing TinyGrow.Abstractions.IPluginModule",
                foreign
                    ? "reference TinyGrow.Abstractions with Private=false and ExcludeAssets=runtime (build/Plugin.targets does) and remove TinyGrow.Abstractions.dll from the plugin folder"
                    : "add a public class implementing IPluginModule, or remove the DLL from the plugins folder");
            return;
        }

        var plugin = new DiscoveredPlugin(name, dll, InformationalVersion(assembly));
        var registered = false;
        foreach (var type in moduleTypes)
        {
            IPluginModule module;
            int version;
            try
            {
                module = (IPluginModule)Activator.CreateInstance(type)!;
                version = module.ContractVersion;
            }
            catch (Exception e)
            {
                var inner = e is TargetInvocationException { InnerException: { } ie } ? ie : e;
                Refuse($"its module {type.FullName} cannot be created ({inner.GetType().Name}: {inner.Message})",
                    "give the module a public parameterless constructor that does not throw");
                continue;
            }
            if (version != Contract.Version)
            {
                Refuse($"built for contract v{version}, host speaks v{Contract.Version}",
                    $"rebuild it against this host's packages (make pack: TinyGrow.Abstractions {HostPackageVersion}, contract v{Contract.Version})");
                continue;
            }
            // Register into a scratch collection first: a module that throws halfway adds nothing.
            var scratch = new ServiceCollection();
            try
            {
                module.Register(scratch);
            }
            catch (Exception e)
            {
                Refuse($"{type.FullName}.Register threw {e.GetType().Name}: {e.Message}",
                    e is FileNotFoundException or FileLoadException
                        ? "copy the plugin's whole build output (its private dependencies with it) into its folder"
                        : "fix the plugin's Register method");
                continue;
            }
            foreach (var descriptor in scratch)
            {
                services.Add(descriptor);
                registrations.Add(new(descriptor, plugin));
            }
            registered = true;
        }
        if (registered) plugins.Add(plugin);
    }

    // Every assembly the plugin's main DLL references, resolved now through the plugin's load context (its
    // folder and deps.json first, then the host for shared and framework assemblies), as the runtime would
    // at first use. A private dependency left out of the folder (a DLL copied without its library, a build
    // output copied in part) would otherwise pass discovery and end the run with a FileNotFoundException at
    // its first growth step. Only the main DLL's direct references are checked, not theirs in turn: a
    // dependency's own dependencies load when it is first used, and resolving the whole closure at every
    // start-up would load assemblies a run may never touch; a `dotnet publish` output has them all anyway.
    static (string Reason, string Fix)? UnresolvedReferences(PluginLoader loader, Assembly assembly, string dll)
    {
        var missing = new List<AssemblyName>();
        var broken = new List<string>();
        foreach (var reference in assembly.GetReferencedAssemblies())
        {
            try
            {
                loader.LoadAssembly(reference);
            }
            catch (FileNotFoundException)
            {
                missing.Add(reference);
            }
            catch (Exception e) when (e is FileLoadException or BadImageFormatException)
            {
                broken.Add($"{Describe(reference)} ({e.Message.TrimEnd().TrimEnd('.')})");
            }
        }
        var plugin = Path.GetFileName(dll);
        var folder = Path.GetDirectoryName(dll);
        if (missing.Count > 0)
        {
            var (them, are) = missing.Count == 1 ? ("it", "is") : ("them", "are");
            return ($"{plugin} references {string.Join(" and ", missing.Select(Describe))}, which {are} neither in {folder} nor provided by the host",
                $"copy {string.Join(" and ", missing.Select(r => r.Name + ".dll"))} next to {plugin}, or publish the plugin with `dotnet publish` " +
                $"and copy the publish folder (which holds {them})");
        }
        if (broken.Count > 0)
            return ($"{plugin} references {string.Join(" and ", broken)}, which cannot be loaded",
                $"replace the DLL named next to {plugin} with the one the plugin was built against, or publish the plugin with `dotnet publish` and copy the publish folder");
        return null;
    }

    static string Describe(AssemblyName name) => $"{name.Name} {name.Version?.ToString() ?? "(no version)"}";

    // The package version a plugin is built against (make pack; build/Packaging.props), without the commit.
    static string HostPackageVersion => InformationalVersion(typeof(Contract).Assembly).Split('+')[0];

    static string InformationalVersion(Assembly assembly)
    {
        var version = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
            ?? assembly.GetName().Version?.ToString() ?? "?";
        // "1.0.0+<40-hex commit>" → "1.0.0+<7-hex>": enough to tell builds apart in a table.
        var plus = version.IndexOf('+');
        return plus >= 0 && version.Length > plus + 8 ? version[..(plus + 8)] : version;
    }

    static string FirstLoaderMessage(Exception e) => e is ReflectionTypeLoadException r && r.LoaderExceptions.FirstOrDefault(x => x is not null) is { } first
        ? first.Message
        : e.Message;
}
