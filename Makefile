# The two commands of the README: `make demo` (main job on the built-in model) and `make test`.
BUNDLE := build/smollm2-android
VENV := .venv/bin

.PHONY: setup demo test lint
setup:
	scripts/setup.sh

$(BUNDLE)/manifest.json: | setup
	$(VENV)/acre-export --target android --model builtin --out $(BUNDLE)

demo: setup $(BUNDLE)/manifest.json
	$(VENV)/python scripts/make_document.py --tokens 1500 --out build/document.txt
	$(VENV)/acre run $(BUNDLE) --context build/document.txt --question "What is the pass key?"

lint: setup
	$(VENV)/ruff check acre tests scripts

test: lint
	$(VENV)/python -m pytest -q
