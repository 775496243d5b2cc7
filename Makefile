# The two commands of the README: `make demo` (main job on the built-in model) and `make test`.
BUNDLE := build/smollm2-android
VENV := .venv/bin

.PHONY: setup demo test lint native-test
setup:
	scripts/setup.sh

$(BUNDLE)/manifest.json: | setup
	$(VENV)/acre-export --target android --model builtin --pot 1024 --out $(BUNDLE)

# a real long document (public domain, benchmarks/data/documents/README.md); a second run reopens its L2
DOCUMENT := benchmarks/data/documents/alice-in-wonderland.txt
QUESTION := What words were printed on the label of the little bottle that Alice found on the table?
demo: setup $(BUNDLE)/manifest.json
	$(VENV)/acre run $(BUNDLE) --context $(DOCUMENT) --store build/alice.l2 --sources \
	    --question "$(QUESTION)" --max-new-tokens 40

NATIVE_SOURCES = native/include/*.h native/src/*.cpp native/src/*.hpp native/tests/*.cpp native/tests/*.hpp \
    native/python/*.cpp native/python/*.hpp native/jni/*.cpp native/host/*.cpp native/host/*.hpp native/cli/*.cpp \
    native/fuzz/*.cpp native/fuzz/*.hpp
lint: setup
	$(VENV)/ruff check acre tests scripts benchmarks native/jni/tests native/fuzz
	clang-format --dry-run --Werror $(NATIVE_SOURCES)
	native/jni/format.sh --check

# the native core's C++ tests (the Python tests reach it through acre._native, built by setup), and the
# C++ runner build/native/acre-cli, which tests/test_native_cli.py runs from ACRE_CLI (missing: it fails)
export ACRE_CLI ?= $(CURDIR)/build/native/acre-cli
# the JNI library and org.acre's classes that native/jni/test.sh builds, for tests/test_real_model.py
export ACRE_JNI ?= $(CURDIR)/build/jni
native-test: setup
	PATH="$(CURDIR)/$(VENV):$$PATH" cmake -S native -B build/native -G Ninja \
	    -DPython_EXECUTABLE="$(CURDIR)/$(VENV)/python" -DACRE_BUILD_TESTS=ON -DACRE_BUILD_PYTHON=OFF >/dev/null
	PATH="$(CURDIR)/$(VENV):$$PATH" cmake --build build/native -j2
	PATH="$(CURDIR)/$(VENV):$$PATH" ctest --test-dir build/native --output-on-failure

test: lint native-test
	native/jni/test.sh
	$(VENV)/python -m pytest -q
