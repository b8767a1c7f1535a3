# Two entry points do all set-up on a fresh machine (see README.md):
#   make demo   - create .venv, install odontoscan, build a phantom study and read it back
#   make test   - create .venv, install odontoscan, run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out/demo
# The CPU build of PyTorch, installed before anything that depends on torch so that
# pip does not pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test venv clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[train,serve,dicom,dev]"
	touch $@

demo: venv
	$(BIN)/odontoscan phantom cbct --seed 0 --format dicom --out $(OUT)/cbct
	$(BIN)/odontoscan info $(OUT)/cbct/dicom
	$(BIN)/odontoscan phantom pano --seed 0 --format dicom --out $(OUT)/pano
	$(BIN)/odontoscan info $(OUT)/pano/pano.dcm

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) out build *.egg-info
