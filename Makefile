# The two commands of the README: `make demo` (main job on the built-in model) and `make test`.
BUNDLE := build/smollm2-android
VENV := .venv/bin

.PHONY: setup demo test lint
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

lint: setup
	$(VENV)/ruff check acre tests scripts benchmarks

test: lint
	android_demo/core/test.sh
	$(VENV)/python -m pytest -q
