# The two commands of the README: `make demo` (main job on the built-in model) and `make test`.
BUNDLE := build/smollm2-android
VENV := .venv/bin

.PHONY: setup demo test lint
setup:
	scripts/setup.sh

$(BUNDLE)/manifest.json: | setup
	$(VENV)/acre-export --target android --model builtin --pot 1024 --out $(BUNDLE)

demo: setup $(BUNDLE)/manifest.json
	$(VENV)/python scripts/make_document.py --bundle $(BUNDLE) --tokens 20000 --out build/document.txt
	rm -rf build/document.l2
	$(VENV)/acre run $(BUNDLE) --context build/document.txt --store build/document.l2 \
	    --question "What is the pass key?" --max-new-tokens 40

lint: setup
	$(VENV)/ruff check acre tests scripts benchmarks

test: lint
	android_demo/core/test.sh
	$(VENV)/python -m pytest -q
