# Two entry points do all set-up on a fresh machine (see README.md):
#   make demo   - create .venv, install odontoscan, analyse a phantom CBCT and a phantom
#                 panoramic end to end (findings, overlays, report, DICOM SEG/SR), score
#                 the CBCT findings against the phantom's ground truth and draft a plan
#   make test   - create .venv, install odontoscan, run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out/demo
# The CPU build of PyTorch, installed before anything that depends on torch so that
# pip does not pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test venv orthanc clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[train,serve,dicom,dev]"
	touch $@

# Seed 2100: a phantom no shipped model was trained or validated on.
demo: venv
	$(BIN)/odontoscan phantom cbct --seed 2100 --format dicom --out $(OUT)/cbct
	$(BIN)/odontoscan analyze $(OUT)/cbct/dicom --out $(OUT)/cbct-analysis --dicom-out
	$(BIN)/odontoscan evaluate $(OUT)/cbct-analysis $(OUT)/cbct --out $(OUT)/cbct-evaluation
	$(BIN)/odontoscan plan $(OUT)/cbct-analysis/findings.json --out $(OUT)/cbct-plan
	$(BIN)/odontoscan phantom pano --seed 2100 --format dicom --out $(OUT)/pano
	$(BIN)/odontoscan analyze $(OUT)/pano/pano.dcm --out $(OUT)/pano-analysis

# Orthanc + its DICOMweb plugin for the PACS tests (tests/serving/test_pacs.py), installed
# with apt-get when absent and we are root; never fails: without them those tests skip.
orthanc:
	@if ! command -v Orthanc >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		{ DEBIAN_FRONTEND=noninteractive apt-get install -y -qq orthanc orthanc-dicomweb >/dev/null 2>&1 \
		|| { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq orthanc orthanc-dicomweb >/dev/null 2>&1; }; } \
		|| echo "orthanc: apt-get install failed; the PACS tests will be skipped"; \
	fi

test: venv orthanc
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) out build *.egg-info
