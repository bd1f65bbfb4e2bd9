# Two commands do all the set-up on a fresh Debian 12 machine with the .NET 10 SDK:
#   make run    restore, build the solution (app, plugins, tests), make sure Fashion-MNIST is there, run the default experiment
#   make test   build and run every test project; ends with "N passed, N failed"
#   make pack   NuGet packages of TinyGrow.Abstractions, .Core, .Datasets into artifacts/packages/ (plugin SDK)
DOTNET ?= dotnet
CONFIG ?= Release
APP := artifacts/tinygrow
FASHION_MNIST := /usr/share/datasets/fashion-mnist
ARGS ?=

.PHONY: build run test data clean bench pack readme-figure

# The app's assemblies are then swapped for ReadyToRun images (scripts/ready-to-run.sh says why; READY_TO_RUN=0 skips).
build:
	$(DOTNET) build Plugins.sln -c $(CONFIG) -nologo -clp:NoSummary -v minimal
	CONFIG=$(CONFIG) DOTNET=$(DOTNET) scripts/ready-to-run.sh

# Fashion-MNIST comes from Debian's dataset-fashion-mnist package unless data/fashion-mnist/ holds
# all four IDX files (raw or .gz), which is where Dataset:Root=data looks first.
FASHION_FILES := train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte
data:
	@complete() { for f in $(FASHION_FILES); do [ -f "$$1/$$f" ] || [ -f "$$1/$$f.gz" ] || return 1; done; }; \
	if complete data/fashion-mnist || complete $(FASHION_MNIST); then \
	  echo "Fashion-MNIST found."; \
	else \
	  echo "Installing Debian package dataset-fashion-mnist (Fashion-MNIST into $(FASHION_MNIST))"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist; \
	fi

# The plugin SDK: what a plugin outside this repository references (templates/, docs/plugins.md).
# Only those three projects are packable (build/Packaging.props); the rest of the solution is skipped.
pack: build
	$(DOTNET) pack Plugins.sln -c $(CONFIG) --no-build -nologo -v minimal

run: build data
	$(DOTNET) $(APP)/tinygrow.dll run $(ARGS)

# The plugin template test builds an outside project against artifacts/packages: pack first.
test: pack
	CONFIG=$(CONFIG) scripts/run-tests.sh

bench: build
	$(DOTNET) bench/TinyGrow.Bench/bin/$(CONFIG)/net10.0/TinyGrow.Bench.dll $(ARGS)

# The README's picture (docs/images/grown-run.png): a fresh default run, or ARGS=<run folder>.
readme-figure: build data
	CONFIG=$(CONFIG) scripts/readme-figure.sh $(ARGS)

clean:
	rm -rf artifacts */*/bin */*/obj
