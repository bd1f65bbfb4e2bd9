# Two commands do all the set-up on a fresh Debian 12 machine with the .NET 10 SDK:
#   make run    restore, build host + plugins, make sure Fashion-MNIST is there, run the default experiment
#   make test   build and run every test project; ends with "N passed, N failed"
DOTNET ?= dotnet
CONFIG ?= Release
APP := artifacts/tinygrow
FASHION_MNIST := /usr/share/datasets/fashion-mnist
ARGS ?=

.PHONY: build run test data clean bench

build:
	$(DOTNET) build Plugins.sln -c $(CONFIG) -nologo -clp:NoSummary -v minimal

# Fashion-MNIST comes from Debian's dataset-fashion-mnist package when no copy is in data/.
data:
	@if [ -f data/fashion-mnist/train-images-idx3-ubyte.gz ] || [ -f data/fashion-mnist/train-images-idx3-ubyte ] || [ -f $(FASHION_MNIST)/train-images-idx3-ubyte.gz ]; then \
	  echo "Fashion-MNIST found."; \
	else \
	  echo "Installing Debian package dataset-fashion-mnist (Fashion-MNIST into $(FASHION_MNIST))"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist; \
	fi

run: build data
	$(DOTNET) $(APP)/tinygrow.dll run $(ARGS)

test: build
	CONFIG=$(CONFIG) scripts/run-tests.sh

bench: build
	$(DOTNET) bench/TinyGrow.Bench/bin/$(CONFIG)/net10.0/TinyGrow.Bench.dll $(ARGS)

clean:
	rm -rf artifacts */*/bin */*/obj
