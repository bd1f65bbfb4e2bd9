using System.ComponentModel;
using System.Reflection;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace TinyGrow.Host.Configuration;

/// <summary>
/// Every configuration key TinyGrow reads, as a tree derived by reflection from the types the
/// configuration is bound to: the properties of <see cref="TinyGrowSettings"/> (so a property added
/// to an option class, or a new spec class it holds, is known with no list to keep), the console
/// logging provider's options, and the few keys read directly (the experiment path, the generic
/// host's own keys).
/// </summary>
/// <remarks>The rules follow <c>ConfigurationBinder</c>: a type a <see cref="TypeConverter"/> makes from
/// a string is a value; a dictionary takes any key; an array or list is indexed 0, 1, 2…; any other
/// class is a section of its public readable properties, values only when they have a setter (named by <see cref="ConfigurationKeyNameAttribute"/>
/// when present).</remarks>
public abstract class ConfigurationSchema
{
    ConfigurationSchema() { }

    /// <summary>A value of <see cref="Type"/>.</summary>
    public sealed class Value(Type type, bool nullable = false) : ConfigurationSchema
    {
        /// <summary>The type the value is converted to.</summary>
        public Type Type { get; } = type;
        /// <summary>Whether the property is <c>Nullable&lt;T&gt;</c> (an empty value or JSON null then means null).</summary>
        public bool Nullable { get; } = nullable;
    }

    /// <summary>An array or list: children are indices 0, 1, 2… without gaps.</summary>
    public sealed class List(Func<ConfigurationSchema> element) : ConfigurationSchema
    {
        /// <summary>What each element is.</summary>
        public ConfigurationSchema Element => element();
    }

    /// <summary>A dictionary: any child name (e.g. a logging category).</summary>
    public sealed class Map(Func<ConfigurationSchema> value) : ConfigurationSchema
    {
        /// <summary>What each entry is.</summary>
        public ConfigurationSchema Entry => value();
    }

    /// <summary>A section: a fixed set of child names (case-insensitive, as configuration keys are).</summary>
    public sealed class Section(IReadOnlyDictionary<string, Func<ConfigurationSchema>> children) : ConfigurationSchema
    {
        /// <summary>The child names, as the types spell them.</summary>
        public IEnumerable<string> Names => children.Keys;

        /// <summary>The child of that name, or null.</summary>
        public ConfigurationSchema? Child(string name) => children.TryGetValue(name, out var child) ? child() : null;

        /// <summary>The exact spelling of <paramref name="name"/>'s child.</summary>
        public string Spelling(string name) => children.Keys.First(k => string.Equals(k, name, StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>The keys of <paramref name="type"/> bound as a whole.</summary>
    public static ConfigurationSchema Of(Type type)
    {
        var nullable = System.Nullable.GetUnderlyingType(type) is not null;
        type = System.Nullable.GetUnderlyingType(type) ?? type;
        if (IsValue(type)) return new Value(type, nullable);
        if ((ElementOf(type, typeof(IDictionary<,>)) ?? ElementOf(type, typeof(IReadOnlyDictionary<,>))) is { } entry)
            return new Map(() => Of(entry));
        if (type.IsArray) return new List(() => Of(type.GetElementType()!));
        if (ElementOf(type, typeof(IEnumerable<>)) is { } element) return new List(() => Of(element));
        return SectionOf([type]);
    }

    /// <summary>One section holding the properties of all <paramref name="types"/> (later ones win) and <paramref name="extra"/>.</summary>
    public static Section SectionOf(IEnumerable<Type> types, IEnumerable<KeyValuePair<string, Func<ConfigurationSchema>>>? extra = null)
    {
        var children = new Dictionary<string, Func<ConfigurationSchema>>(StringComparer.OrdinalIgnoreCase);
        foreach (var type in types)
            foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
            {
                if (property.GetIndexParameters().Length > 0 || property.GetMethod is not { IsPublic: true }) continue;
                // The binder sets a value only through a setter (init included); a section or list it fills in place.
                if (IsValue(Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType) && property.SetMethod is not { IsPublic: true }) continue;
                var name = property.GetCustomAttribute<ConfigurationKeyNameAttribute>()?.Name ?? property.Name;
                var propertyType = property.PropertyType;
                children.Remove(name); // keep the spelling of the last type that has it
                children[name] = () => Of(propertyType);
            }
        foreach (var (name, child) in extra ?? [])
        {
            children.Remove(name);
            children[name] = child;
        }
        return new Section(children);
    }

    /// <summary>Whether the binder reads <paramref name="type"/> from one string (it uses the same test).</summary>
    public static bool IsValue(Type type) =>
        type == typeof(object) || TypeDescriptor.GetConverter(type).CanConvertFrom(typeof(string));

    static Type? ElementOf(Type type, Type genericInterface)
    {
        var candidates = type.IsInterface ? type.GetInterfaces().Append(type) : type.GetInterfaces();
        var match = candidates.FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == genericInterface);
        return match?.GetGenericArguments()[^1];
    }

    /// <summary>The key <c>TINYGROW_CI</c> sets (read by the tests only).</summary>
    public const string CiKey = "CI";

    /// <summary>Keys that are accepted but are nobody's to set (the tests' CI flag, the generic host's
    /// own keys, config.json's record of dataset files): never offered for a misspelt key.</summary>
    public static bool IsInternal(string name) => InternalKeys.Contains(name);

    static readonly HashSet<string> InternalKeys = new(StringComparer.OrdinalIgnoreCase)
        { CiKey, HostDefaults.ContentRootKey, HostDefaults.EnvironmentKey, HostDefaults.ApplicationKey, DatasetFilesKey, LoadedPluginsKey };

    /// <summary>Everything TinyGrow, its host and its logging read.</summary>
    public static Section TinyGrow { get; } = SectionOf([typeof(TinyGrowSettings)], [
        Named(ConfigurationLayers.ExperimentKey, new Value(typeof(string))),
        // TINYGROW_CI=1, set by .ci/run for the tests (a server they need must be there); the
        // application ignores it, but runs started under CI inherit it and must not refuse it.
        Named(CiKey, new Value(typeof(string))),
        // Set by the generic host itself.
        Named(HostDefaults.ContentRootKey, new Value(typeof(string))),
        Named(HostDefaults.EnvironmentKey, new Value(typeof(string))),
        Named(HostDefaults.ApplicationKey, new Value(typeof(string))),
        Named("Logging", Logging()),
        // Written into a run's config.json (the files the dataset was read from); read by nothing,
        // accepted so that the file can be given back as an experiment (resume, a repeated run).
        Named(DatasetFilesKey, Of(typeof(List<TinyGrow.Abstractions.DataFile>))),
        // Written into a run's config.json (the plugins that served it), likewise read by nothing.
        Named(LoadedPluginsKey, Of(typeof(List<TinyGrow.Host.Plugins.PluginRecord>))),
    ]);

    /// <summary>The key of config.json's record of the plugins loaded.</summary>
    public const string LoadedPluginsKey = "LoadedPlugins";

    /// <summary>The key of config.json's record of the dataset's files.</summary>
    public const string DatasetFilesKey = "DatasetFiles";

    // What Logging.AddConfiguration and AddConsole read (the only provider Program.cs adds):
    // Logging:LogLevel:<category>, and per provider (alias or full type name) its own LogLevel and
    // options; the console's FormatterOptions depend on FormatterName, so all formatters' are known.
    static Section Logging()
    {
        var levels = new Map(() => new Value(typeof(LogLevel)));
        var formatterOptions = SectionOf([typeof(SimpleConsoleFormatterOptions), typeof(JsonConsoleFormatterOptions)]);
        var console = SectionOf([typeof(ConsoleLoggerOptions)], [Named("LogLevel", levels), Named("FormatterOptions", formatterOptions)]);
        var provider = typeof(ConsoleLoggerProvider);
        var alias = provider.GetCustomAttribute<ProviderAliasAttribute>()?.Alias ?? "Console";
        return SectionOf([], [Named("LogLevel", levels), Named(alias, console), Named(provider.FullName!, console)]);
    }

    static KeyValuePair<string, Func<ConfigurationSchema>> Named(string name, ConfigurationSchema schema) => new(name, () => schema);
}
