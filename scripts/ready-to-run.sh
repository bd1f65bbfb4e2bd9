#!/usr/bin/env bash
# ReadyToRun images of the application's assemblies (its own, FSharp.Core, TorchSharp, …), put in place of
# their IL-only copies in artifacts/tinygrow (`make build` runs this after building the solution).
#
# Why: growth code runs a few dozen times a run, so .NET meets it cold: at tier 0 it compiles every method on
# its first call and runs it unoptimised. On the default run that is about a quarter of the growth seconds
# (System.Runtime.JitInfo on the growing thread: 110–190 ms of 0.5–0.75 s). Precompiled images start with
# optimised code: 70 % fewer methods compiled at run time; on the default run growth about 10 % shorter (30 paired
# runs), start-up 0.3 s sooner, results identical (docs/notebook/2026-12-07-ready-to-run.md). The SDK makes the images (`dotnet publish
# -p:PublishReadyToRun=true`, Crossgen2 from the NuGet feed); this script only chooses which to keep, and keeps them
# only if the app then starts (`tinygrow plugins`; otherwise every file goes back as built). The images
# target the runtime identifier's baseline instruction set (any x64 or arm64 Linux machine) and hold their IL too:
# on another platform the runtime ignores the native code and compiles the IL.
#
# READY_TO_RUN=0 skips it (the app then runs JIT-compiled only, as built). CONFIG must be the configuration the
# app was built in (`make build` passes its own): the images are compiled from the sources again, in CONFIG.
# READY_TO_RUN_APP and READY_TO_RUN_OUT name other app and publish folders (the tests use them); the publish's obj
# folders stay under artifacts/obj/ready-to-run/obj/ (Directory.Build.props).
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${CONFIG:-Release}
DOTNET=${DOTNET:-dotnet}
APP=${READY_TO_RUN_APP:-artifacts/tinygrow}
if [ "${READY_TO_RUN:-1}" = 0 ]; then
  echo "ReadyToRun: skipped (READY_TO_RUN=0); the app runs JIT-compiled"
  exit 0
fi
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) rid=linux-x64 ;;
  Linux-aarch64) rid=linux-arm64 ;;
  *) echo "ReadyToRun: no images for $(uname -s)-$(uname -m); the app runs JIT-compiled"; exit 0 ;;
esac
out=${READY_TO_RUN_OUT:-artifacts/obj/ready-to-run}
mkdir -p "$out"
out_abs=$(cd "$out" && pwd)
# UsesTorchNatives=false: the images need TorchSharp's managed assembly only, not libtorch's 650 MB of natives.
# OutDir and ReadyToRunImages (Directory.Build.props): the RID-specific build and its obj folders go there, not over
# the app's and the solution's.
# The images are an optimisation: when they cannot be made (no Crossgen2 or runtime pack in the package feed, an
# offline machine), the app stays as built and works, JIT-compiled; the build does not fail for them.
if ! "$DOTNET" publish src/Host/TinyGrow.Host.csproj -c "$CONFIG" -r "$rid" --self-contained false \
  -p:PublishReadyToRun=true -p:ReadyToRunImages=true -p:UsesTorchNatives=false -p:OutDir="$out_abs/build/" -o "$out/publish" \
  -nologo -v minimal -clp:NoSummary; then
  echo "warning: ReadyToRun: the images could not be made (the publish's error is above); the app in $APP is unchanged and runs JIT-compiled. READY_TO_RUN=0 skips this step." >&2
  exit 0
fi
# Every assembly of the app folder's root that the publish compiled (the app's own, FSharp.Core, TorchSharp, the
# Microsoft.Extensions packages, …: the same assemblies, all resolved from their packages' portable lib/ folders on
# Linux). The plugins' own DLLs stay IL: they are small, and the mathematics is in TinyGrow.Core.
# The assembly's symbols (.pdb) go with it when the app has them: an image's debug directory names the symbols
# of its own compilation, and stack traces lose their file and line numbers with another build's.
# Each file replaced is kept as NAME.as-built until the app has started with the images (`tinygrow plugins`: the
# host, its configuration, the plugins and the assemblies they load) and refuses no plugin the app as built serves;
# when a copy fails, the app does not start, a plugin is refused, or the step is interrupted (an image from a stale or
# foreign publish, e.g. a composite one whose shared file is not copied), every file goes back as built: the app is
# never left half replaced. A file joins `swapped_files` before its first rename, and `restore` renames back only
# what has an .as-built copy, so an interrupt between the two renames loses nothing.
swapped_files=()
restore() {
  trap '' INT TERM HUP  # a second interrupt must not stop the restore half way
  local f
  for f in ${swapped_files[@]+"${swapped_files[@]}"}; do
    if [ -e "$APP/$f.as-built" ]; then
      mv -f "$APP/$f.as-built" "$APP/$f" || echo "warning: ReadyToRun: $APP/$f.as-built could not be renamed back to $APP/$f; do it by hand, or rebuild." >&2
    fi
  done
  rm -f "$APP"/*.ready-to-run
}
interrupted() {  # interrupted SIGNAL EXIT-CODE
  restore
  echo "warning: ReadyToRun: interrupted ($1); the app is as built" >&2
  exit "$2"
}
trap 'interrupted INT 130' INT
trap 'interrupted TERM 143' TERM
trap 'interrupted HUP 129' HUP
failed_swap() {  # failed_swap FILE: every file back as built, a warning, the build goes on
  restore
  echo "warning: ReadyToRun: $APP/$1 could not be replaced (disk full?); the app is as built and runs JIT-compiled." >&2
  exit 0
}
swap() {  # swap FILE: publish/FILE over APP/FILE, by copy then renames; the build's file stays as FILE.as-built
  # A copy then renames: the app's copies of package assemblies may be hard links into the NuGet cache
  # (Directory.Build.props), and writing through one would change the cache's file. A rename never does.
  cp "$out/publish/$1" "$APP/$1.ready-to-run" || failed_swap "$1"
  swapped_files+=("$1")
  mv -f "$APP/$1" "$APP/$1.as-built" || failed_swap "$1"
  mv -f "$APP/$1.ready-to-run" "$APP/$1" || failed_swap "$1"
}
# `tinygrow plugins` from the app's folder (the repository's own settings are not the app's), within a minute:
# its output, and its exit code as this function's.
plugins_listing() { (cd "$APP" && timeout 60 "$DOTNET" tinygrow.dll plugins 2>&1); }
# The plugins the app as built refuses (if any) are not the images' doing: only new refusals count against them.
# An app that does not start as built cannot tell a bad image from its own fault: its images are then kept unchecked.
checked=1
if ! baseline=$(plugins_listing); then
  checked=0
  echo "warning: ReadyToRun: the app as built does not start (\`tinygrow plugins\` in $APP failed); its images are put in place unchecked." >&2
fi
refused_before=$(printf '%s\n' "$baseline" | grep -c '^Refused' || true)
swapped=0
for image in "$out"/publish/*.dll; do
  name=$(basename "$image")
  [ -f "$APP/$name" ] || continue
  swap "$name"
  symbols="${name%.dll}.pdb"
  if [ -f "$APP/$symbols" ] && [ -f "$out/publish/$symbols" ]; then swap "$symbols"; fi
  swapped=$((swapped + 1))
done
if [ "$swapped" = 0 ]; then
  echo "warning: ReadyToRun: no image in $out/publish matches an assembly of $APP (is the solution built?); the app is unchanged and runs JIT-compiled." >&2
  exit 0
fi
if [ "$checked" = 1 ] && ! listing=$(plugins_listing); then
  restore
  printf '%s\n' "$listing" | tail -n 5 >&2
  echo "warning: ReadyToRun: the app did not start with the images (\`tinygrow plugins\` failed, above); every assembly is back as built and runs JIT-compiled. Deleting $out and building again makes fresh images." >&2
  exit 0
fi
refused_after=$(printf '%s\n' "${listing:-}" | grep -c '^Refused' || true)
if [ "$checked" = 1 ] && [ "$refused_after" -gt "$refused_before" ]; then
  restore
  printf '%s\n' "$listing" | grep '^Refused' >&2
  echo "warning: ReadyToRun: with the images the app refuses plugins it serves as built (above); every assembly is back as built and runs JIT-compiled. Deleting $out and building again makes fresh images." >&2
  exit 0
fi
trap - INT TERM HUP
for f in "${swapped_files[@]}"; do rm -f "$APP/$f.as-built"; done
echo "ReadyToRun: $swapped assemblies of $APP replaced by their images"
