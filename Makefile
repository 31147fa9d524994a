# Set-up and the everyday commands. `make train` and `make test` create the
# virtual environment in .venv on first use, so each works on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TASK ?= atari_pong
CONFIGS ?= atari100k
ARGS ?=

.PHONY: install install-gpu train test sweep scores bench clean

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip setuptools wheel
	# The base, pinned: the exact code behind the paper's Atari results. Its
	# declared requirements (gym==0.19, tensorflow-cpu, crafter) no longer
	# install, so it goes in without them; setup.py declares the real ones.
	$(PY) -m pip install --no-deps dreamerv3==1.5.0
	$(PY) -m pip install -e '.[test]'
	touch $@

install: $(VENV)/.installed

# JAX's CUDA 12 build, at the version already installed.
install-gpu: install
	$(PY) -m pip install "jax[cuda12]==$$($(PY) -c 'import jax; print(jax.__version__)')"

train: install
	$(PY) -m harmony_v3.train --task $(TASK) --configs $(CONFIGS) $(ARGS)

test: install
	$(PY) -m pytest tests

sweep: install
	PATH=$(abspath $(VENV))/bin:$$PATH ./run_atari100k.sh $(ARGS)

scores: install
	$(PY) -m harmony_v3.scores $(ARGS)

bench: install
	$(PY) -m harmony_v3.bench $(ARGS)

clean:
	rm -rf $(VENV) *.egg-info
