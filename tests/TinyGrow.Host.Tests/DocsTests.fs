/// The reference pages stay true to the code they describe: docs/configuration.md has a row for every
/// settable property of the option classes (and none for a key that does not exist), with the class's
/// default and range; docs/verbs.md lists exactly the exit codes of ExitCodes. The pages are read from
/// the checkout the tests were built in.
module TinyGrow.Host.Tests.DocsTests

open System
open System.ComponentModel.DataAnnotations
open System.Collections
open System.Globalization
open System.IO
open System.Reflection
open System.Text.RegularExpressions
open Expecto
open TinyGrow.Host
open TinyGrow.Host.Configuration

let private docs = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "..", "docs"))

/// A configuration key the option classes define: its name as the page writes it, the property, and
/// the value of a fresh instance (the default).
type OptionKey = { Key: string; Property: PropertyInfo; Default: obj | null }

let private settable (t: Type) =
    t.GetProperties(BindingFlags.Public ||| BindingFlags.Instance)
    |> Array.filter (fun p -> p.GetSetMethod() <> null && p.GetIndexParameters().Length = 0)

let private isSection (t: Type) =
    t.IsClass && t <> typeof<string> && not (typeof<IEnumerable>.IsAssignableFrom t)

/// Every key of TinyGrowSettings: `Section:Key`, a root value (`Device`), and for a list of objects
/// (Model:Layers) the list itself plus `Section:List:<n>:Key` for its element's properties.
let optionKeys () : OptionKey list =
    let root = TinyGrowSettings()
    [ for section in settable typeof<TinyGrowSettings> do
        let value = section.GetValue root
        if isSection section.PropertyType then
            for p in settable section.PropertyType do
                let key = $"{section.Name}:{p.Name}"
                yield { Key = key; Property = p; Default = p.GetValue value }
                if p.PropertyType.IsGenericType && p.PropertyType.GetGenericTypeDefinition() = typedefof<Collections.Generic.List<_>> then
                    let element = p.PropertyType.GetGenericArguments()[0]
                    if isSection element then
                        let instance = Activator.CreateInstance element
                        for q in settable element do
                            yield { Key = $"{key}:<n>:{q.Name}"; Property = q; Default = q.GetValue instance }
        else
            yield { Key = section.Name; Property = section; Default = value } ]

/// A row of a table on the page: | `key` | default | range | meaning |.
type DocRow = { Key: string; Default: string; Range: string; Line: int }

let private unquote (cell: string) =
    let c = cell.Trim()
    if c.Length >= 2 && c.StartsWith '`' && c.EndsWith '`' && c.IndexOf('`', 1) = c.Length - 1 then c[1 .. c.Length - 2] else c

/// The key rows of docs/configuration.md: table lines whose first cell is one key in backticks.
let docRows (text: string) =
    [ for i, line in Seq.indexed (text.Split '\n') do
        let m = Regex.Match(line, @"^\|\s*`([A-Za-z]+(?::[A-Za-z<>]+)*)`\s*\|(.*)\|\s*$")
        if m.Success then
            let cells = m.Groups[2].Value.Split('|')
            if cells.Length >= 3 then
                yield { Key = m.Groups[1].Value; Default = unquote cells[0]; Range = cells[1]; Line = i + 1 } ]

let private number (s: string) =
    match Double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture) with
    | true, v -> Some v
    | _ -> None

/// Whether the page's default text is the class's default value.
let defaultMatches (documented: string) (value: obj | null) =
    match value with
    | null -> documented = "\"\""
    | :? string as s -> (if s = "" then "\"\"" else s) = documented
    | :? bool as b -> documented = (if b then "true" else "false")
    | :? IEnumerable as e -> documented = "[]" && not (e.GetEnumerator().MoveNext())
    | v ->
        match number documented with
        | Some d -> let x = Convert.ToDouble(v, CultureInfo.InvariantCulture) in abs (d - x) <= 1e-12 * max 1.0 (abs x)
        | None -> false

/// The numbers written in backticks in a range cell.
let private backticked (cell: string) = [ for m in Regex.Matches(cell, "`([^`]*)`") -> m.Groups[1].Value ]

/// Problems of a range cell against the property's [Range] and its [RegularExpression] of plain
/// alternatives (^(a|b|c)$): each bound, each allowed value, must be written in backticks.
let rangeProblems (row: DocRow) (p: PropertyInfo) =
    let written = backticked row.Range
    [ match p.GetCustomAttribute<RangeAttribute>() with
      | null -> ()
      | r ->
          for bound, name in [ r.Minimum, "minimum"; r.Maximum, "maximum" ] do
              let b = Convert.ToDouble(bound, CultureInfo.InvariantCulture)
              if not (written |> List.exists (fun w -> number w |> Option.exists (fun d -> abs (d - b) <= 1e-12 * max 1.0 (abs b)))) then
                  yield $"{row.Key} (line {row.Line}): the range does not name the {name} {bound}"
      match p.GetCustomAttribute<RegularExpressionAttribute>() with
      | null -> ()
      | r ->
          let m = Regex.Match(r.Pattern, @"^\^\(([A-Za-z0-9|-]*)\)\$$")
          if m.Success then
              for choice in m.Groups[1].Value.Split '|' do
                  let shown = if choice = "" then "\"\"" else choice
                  if not (List.contains shown written) then
                      yield $"{row.Key} (line {row.Line}): the range does not name the value `{shown}`" ]

/// Fails naming every item when the list is not empty.
let private none (what: string) (items: 'a list) =
    if not items.IsEmpty then
        let listed = String.Join(Environment.NewLine + "  ", items)
        failtest $"{what}:{Environment.NewLine}  {listed}"

let private repository = Path.GetDirectoryName docs |> nonNull

/// The lines of a `<!-- bench:name -->` section of a file, markers excluded.
let private benchSection (path: string) (name: string) =
    let text = File.ReadAllText path
    let start, stop = text.IndexOf $"<!-- bench:{name} -->", text.IndexOf $"<!-- /bench:{name} -->"
    if start < 0 || stop < start then failtest $"{path} has no bench:{name} section"
    text.Substring(start, stop - start).Split '\n' |> Array.skip 1 |> Array.toList

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens.
let anchorOf (heading: string) =
    let kept = heading.Trim().ToLowerInvariant() |> String.filter (fun c -> Char.IsLetterOrDigit c || c = ' ' || c = '-' || c = '_')
    kept.Replace(' ', '-')

/// Anchors a markdown file offers: its headings' and its `<a id="…">` elements'.
let private anchorsIn (path: string) =
    let text = File.ReadAllText path
    set [ for m in Regex.Matches(text, "(?m)^#+ (.*)$") -> anchorOf m.Groups[1].Value
          for m in Regex.Matches(text, "<a id=\"([^\"]+)\"") -> m.Groups[1].Value ]

/// Broken relative links of a markdown file: a target that does not exist, or an anchor it does not have.
let brokenLinks (path: string) =
    let text = Regex.Replace(File.ReadAllText path, "(?s)```.*?```", "")
    [ for m in Regex.Matches(text, @"\]\(([^)\s]+)\)") do
        let link = m.Groups[1].Value
        if not (link.StartsWith "http://" || link.StartsWith "https://" || link.StartsWith "mailto:") then
            let file, anchor = match link.IndexOf '#' with -1 -> link, "" | i -> link[.. i - 1], link[i + 1 ..]
            let target = if file = "" then path else Path.GetFullPath(Path.Combine(Path.GetDirectoryName path |> nonNull, file))
            if not (File.Exists target || Directory.Exists target) then
                yield $"{Path.GetRelativePath(repository, path)}: {link} does not exist"
            elif anchor <> "" && target.EndsWith ".md" && not ((anchorsIn target).Contains anchor) then
                yield $"{Path.GetRelativePath(repository, path)}: {link} has no such anchor" ]

let private configurationPage () = File.ReadAllText(Path.Combine(docs, "configuration.md"))

let tests =
    testList "DocsTests" [
        test "docs/configuration.md has a row for every key of the option classes, and for nothing else" {
            let keys = optionKeys () |> List.map _.Key |> set
            let rows = docRows (configurationPage ())
            let documented = rows |> List.map _.Key |> set
            none "docs/configuration.md against the keys of the option classes"
                [ for k in Set.difference keys documented -> $"{k}: a key of the option classes without a row"
                  for k in Set.difference documented keys -> $"{k}: a row naming no key of the option classes"
                  for k, n in rows |> List.countBy _.Key do
                      if n > 1 then yield $"{k}: {n} rows" ]
        }
        test "each documented default and range is the option class's" {
            let rows = docRows (configurationPage ()) |> List.map (fun r -> r.Key, r) |> Map.ofList
            let problems =
                [ for k in optionKeys () do
                    match rows.TryFind k.Key with
                    | None -> ()   // the test above names it
                    | Some row ->
                        if not (defaultMatches row.Default k.Default) then
                            yield $"{k.Key} (line {row.Line}): documented default {row.Default}, the class's is {k.Default}"
                        yield! rangeProblems row k.Property ]
            none "docs/configuration.md against the option classes" problems
        }
        test "the checks would see a wrong default, a missing range bound and a missing allowed value" {
            // The page's parser and comparisons, on rows made wrong on purpose.
            Expect.isFalse (defaultMatches "300" 60.0) "60 is not 300"
            Expect.isTrue (defaultMatches "1e-3" 0.001) "1e-3 is 0.001"
            Expect.isFalse (defaultMatches "\"\"" "runs") "an empty default is not runs"
            Expect.isFalse (defaultMatches "[]" (Collections.Generic.List<int>([ 1 ]))) "a list with an element is not []"
            let growth = typeof<TinyGrow.Abstractions.GrowthOptions>
            let row key range = { Key = key; Default = ""; Range = range; Line = 0 }
            let property name = match growth.GetProperty(name: string) with null -> failtest $"GrowthOptions.{name} is gone" | p -> p
            Expect.isNonEmpty (rangeProblems (row "Growth:StepsPerEpoch" "`0` to `100`") (property "StepsPerEpoch")) "the maximum 1000 is missing"
            Expect.isEmpty (rangeProblems (row "Growth:StepsPerEpoch" "`0` to `1000`") (property "StepsPerEpoch")) "0 to 1000 is the range"
            Expect.isNonEmpty (rangeProblems (row "Growth:Selection" "`all`, `best`") (property "Selection")) "roundrobin is missing"
            let parsed = docRows "| `Growth:StepsPerEpoch` | `12` | `0` to `1000` | steps |\n| key | default | range | meaning |"
            Expect.equal (parsed |> List.map (fun r -> r.Key, r.Default)) [ "Growth:StepsPerEpoch", "12" ] "one key row, the header skipped"
        }
        test "the README's headline table is the strategies table of docs/results.md, with its provenance" {
            // The table's rows, then its provenance line (the README shows them in that order).
            let rows (lines: string list) = (lines |> List.filter (fun l -> l.StartsWith "|")) @ (lines |> List.filter (fun l -> l.StartsWith "Measured by"))
            let readme = benchSection (Path.Combine(repository, "README.md")) "headline" |> rows
            let results = benchSection (Path.Combine(docs, "results.md")) "strategies" |> rows
            Expect.isNonEmpty readme "the README shows a table"
            Expect.equal readme results "README.md's bench:headline rows against docs/results.md's bench:strategies rows (make bench ARGS=\"strategies 10 1 2 3\" writes both)"
        }
        test "links between the README and the docs pages resolve, anchors included" {
            Expect.equal (anchorOf "Growth that stops by itself") "growth-that-stops-by-itself" "a heading's anchor"
            Expect.equal (anchorOf "systemd: `tinygrow daemon`") "systemd-tinygrow-daemon" "punctuation dropped"
            let pages =
                [ Path.Combine(repository, "README.md"); Path.Combine(repository, "deploy", "README.md") ]
                @ List.ofArray (Directory.GetFiles(docs, "*.md", SearchOption.AllDirectories))
            none "broken links" (pages |> List.collect brokenLinks)
        }
        test "docs/verbs.md lists exactly the exit codes of ExitCodes" {
            let codes =
                typeof<ExitCodes>.GetFields(BindingFlags.Public ||| BindingFlags.Static)
                |> Array.filter (fun f -> f.IsLiteral && f.FieldType = typeof<int>)
                |> Array.map (fun f -> f.GetRawConstantValue() :?> int)
                |> set
            let text = File.ReadAllText(Path.Combine(docs, "verbs.md"))
            let section = text.Substring(text.IndexOf "## Exit codes")
            let documented =
                [ for m in Regex.Matches(section, @"(?m)^\|\s*(\d+)\s*\|") -> int m.Groups[1].Value ] |> set
            Expect.equal documented codes "the codes in docs/verbs.md's table against src/Host/ExitCodes.cs"
            // `tinygrow help` summarises them too: every code, and no other, as "<code> <what>".
            use usage = new StringWriter()
            TinyGrow.Host.Commands.Usage.Write usage
            let help = usage.ToString()
            let summary = help.Substring(help.IndexOf "Exit codes:")
            let inHelp =
                [ for m in Regex.Matches(summary, @"(?:^|[\s:,(])(\d+) (?=[a-z])") -> int m.Groups[1].Value ] |> set
            Expect.equal inHelp codes $"the codes `tinygrow help` lists against src/Host/ExitCodes.cs:\n{summary}"
        }
    ]
