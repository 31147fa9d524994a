# Set-up and the everyday commands. `make train` and `make test` create the
# virtual environment in .venv on first use, so each works on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TASK ?= atari_pong
CONFIGS ?= atari100k
ARGS ?=

.PHONY: install install-gpu install-ray install-track install-dmc train test test-slurm \
	sweep scores bench wheelhouse clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip setuptools wheel
	# The base, pinned: the exact code behind the paper's Atari results. Its
	# declared requirements (gym==0.19, tensorflow-cpu, crafter) no longer
	# install, so it goes in without them; pyproject.toml declares the real ones.
	$(PY) -m pip install --no-deps dreamerv3==1.5.0
	$(PY) -m pip install -e '.[test]'
	touch $@

install: $(VENV)/.installed

# JAX's CUDA 12 build, at the version already installed.
install-gpu: install
	$(PY) -m pip install "jax[cuda12]==$$($(PY) -c 'import jax; print(jax.__version__)')"

# Ray for `run_atari100k.sh --engine ray` and its tests (the `ray` extra).
install-ray: install
	$(PY) -m pip install -e '.[test,ray]'

# Weights & Biases for `--run.track wandb` and its tests (the `track` extra).
install-track: install
	$(PY) -m pip install -e '.[test,track]'

# DeepMind Control (the `dmc` extra: dm-control and MuJoCo, pinned) and the
# libraries of Mesa's EGL that render its images headless, on the CPU
# (docs/dmc.md). apt-get needs root; without it, install the four Debian
# packages by other means, or use MUJOCO_GL=osmesa with libosmesa6.
DMC_DEBS := libegl1 libopengl0 libegl-mesa0 libgl1-mesa-dri
install-dmc: install
	@if dpkg -s $(DMC_DEBS) >/dev/null 2>&1; then \
	  echo 'EGL libraries present: $(DMC_DEBS)'; \
	else \
	  apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $(DMC_DEBS); \
	fi
	$(PY) -m pip install -e '.[test,dmc]'

train: install
	$(PY) -m harmony_v3.train --task $(TASK) --configs $(CONFIGS) $(ARGS)

# Two test processes (pytest-xdist), each taking whole files so that a
# module's compiled fixtures are built once: XLA compiles on one core, and
# most of the suite's time is compilation. TEST_WORKERS=0 runs it in one.
TEST_WORKERS ?= 2
test: install
	$(PY) -m pytest tests -n $(TEST_WORKERS) --dist loadfile --durations=20

# The SLURM engine on real SLURM: a single-node cluster on this machine
# (scripts/slurm_local_cluster.sh; root, and apt-get the first time), real
# job arrays. Skips with the reason where it cannot run.
test-slurm: install
	HARMONY_SLURM_TESTS=1 $(PY) -m pytest tests/test_sweep_slurm.py

sweep: install
	PATH=$(abspath $(VENV))/bin:$$PATH PYTHON=$(abspath $(PY)) ./run_atari100k.sh $(ARGS)

scores: install
	$(PY) -m harmony_v3.scores $(ARGS)

bench: install
	$(PY) -m harmony_v3.bench $(ARGS)

# Wheels for an offline x86-64 GPU machine with Python 3.12 whose image already
# has JAX (CUDA), flax, optax, numpy, opencv and matplotlib: everything else
# the training and bench commands need, dreamerv3 and harmony_v3 included.
# On that machine: pip install --no-index --no-deps --target DIR $(WHEELHOUSE)/*.whl
WHEELHOUSE ?= .whl
TFP_PIN := $(shell grep -o 'tfp-nightly==[^"]*' pyproject.toml)
CRAFTER_PIN := $(shell grep -o '"crafter==[^"]*' pyproject.toml | tr -d '"')
OFFLINE_WHEELS := $(TFP_PIN) decorator gast dm-tree ruamel.yaml \
	ruamel.yaml.clib gymnasium farama-notifications ale-py tensorboardX minatar \
	imageio opensimplex
PLATFORMS := $(foreach tag,1 2014 _2_17 _2_24 _2_27 _2_28,\
	--platform manylinux$(tag)_x86_64)
wheelhouse: install
	$(PY) -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
	  --implementation cp $(PLATFORMS) -d $(WHEELHOUSE) $(OFFLINE_WHEELS)
	# dreamerv3 and crafter ship only sdists: built here, pure Python.
	$(PY) -m pip wheel --no-deps -w $(WHEELHOUSE) dreamerv3==1.5.0 \
	  $(CRAFTER_PIN) .

clean:
	rm -rf $(VENV) *.egg-info
