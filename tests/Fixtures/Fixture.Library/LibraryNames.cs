namespace Fixture.Library;

/// <summary>What Fixture.NeedsLibrary takes from its private dependency: its strategy's name.</summary>
public static class LibraryNames
{
    public const string Suffix = "-strategy";

    // A method, not a constant: a constant is copied into the caller and would not need this DLL at run time.
    public static string Strategy(string stem) => stem + Suffix;
}
