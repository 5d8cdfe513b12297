# Two commands on a fresh machine (Python 3.11 and pip): `make demo` and `make test`. Everything else is set up here.
PYTHON ?= python3
VENV := .venv
VENV42 := .venv-bpy42
VENV45 := .venv-bpy45
VENV52 := .venv-bpy52
# Python 3.13 for bpy 5.2: $(PYTHON313) if given, else pyenv's 3.13.0, else python3.13 on the PATH. Without one, setup
# says so and goes on, and the 5.2 check is skipped with that reason.
PYTHON313 ?= $(or $(shell prefix=$$(pyenv prefix 3.13.0 2>/dev/null) && echo $$prefix/bin/python3.13),$(shell command -v python3.13 2>/dev/null))
PY := $(VENV)/bin/python

.PHONY: setup no-python313 demo demo-coherence test test-engine test-blender test-packaging bench bench-ray bench-speed bench-table bench-overhead bench-video-cache bench-gpu build build-light build-full clean e2e-real-blender e2e-real-blender-shot train-shapes

setup: $(VENV)/.ready $(VENV42)/.ready $(VENV45)/.ready $(if $(PYTHON313),$(VENV52)/.ready,no-python313)

$(VENV)/.ready: requirements/engine.txt requirements/dev.txt requirements/ray.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/dev.txt
	touch $@

# bpy 4.2 LTS, 4.5 LTS and 5.2 LTS each in its own venv: one Python can hold only one bpy.
$(VENV42)/.ready: requirements/bpy42.txt
	$(PYTHON) -m venv $(VENV42)
	$(VENV42)/bin/python -m pip install --quiet -r requirements/bpy42.txt
	touch $@

$(VENV45)/.ready: requirements/bpy45.txt
	$(PYTHON) -m venv $(VENV45)
	$(VENV45)/bin/python -m pip install --quiet -r requirements/bpy45.txt
	touch $@

$(VENV52)/.ready: requirements/bpy52.txt
	$(PYTHON313) -m venv $(VENV52)
	$(VENV52)/bin/python -m pip install --quiet -r requirements/bpy52.txt
	touch $@

no-python313:
	@echo "setup: no Python 3.13 (PYTHON313, pyenv 3.13.0 or python3.13 on the PATH): the bpy 5.2 check will be skipped"

demo: $(VENV)/.ready
	$(PY) scripts/demo.py --output out/demo

# Temporal coherence: a ball rolling under a moving camera, plain vs Follow Motion, flicker of both and the input.
demo-coherence: $(VENV)/.ready
	$(PY) scripts/demo_coherence.py --output out/coherence

test: setup
	$(PY) -m pytest -q

# One layer at a time (tests/engine, tests/blender, tests/packaging); `make test` runs them all.
# The engine tests run with bpy impossible to import (KD_BLOCK_BPY, tests/conftest.py): the engine needs no Blender.
test-engine: $(VENV)/.ready
	KD_BLOCK_BPY=1 $(PY) -m pytest -q tests/engine

test-blender: setup
	$(PY) -m pytest -q tests/blender

test-packaging: setup
	$(PY) -m pytest -q tests/packaging

# Retrain the embedded model (engine/shapes/model, committed); about half an hour on 2 cores, see README.
train-shapes: $(VENV)/.ready
	$(PY) scripts/train_shapes_model.py --output engine/shapes/model

# Benchmarks (not part of `make test`); record results in bench/RESULTS.md.
bench: $(VENV)/.ready
	$(PY) bench/bake.py
	$(PY) bench/audio.py
	$(PY) bench/audio_keys.py

# Engine vs plain diffusers loops and stable-diffusion-videos, and the speed switches, on the CPU in alternating rounds
# (bench/interleave.py; about 20 minutes on 2 cores; sdv in its own venv, as it needs an older diffusers/transformers:
# requirements/bench-sdv.txt).
bench-speed: $(VENV)/.ready .venv-sdv/.ready
	$(PY) bench/speed_cpu.py --sdv-python .venv-sdv/bin/python

# The peer table: interpolate, the plain loop and sdv at 8/16/48/200 frames x 64/96/128 px (about 30 minutes).
bench-table: $(VENV)/.ready .venv-sdv/.ready
	$(PY) bench/speed_cpu.py --table --sdv-python .venv-sdv/bin/python

# What a render pays outside the model: fixed cost per render, overhead per frame (about a minute).
bench-overhead: $(VENV)/.ready
	$(PY) bench/overhead.py

# diffusers' cache hooks on a Wan transformer (engine/video_cache.py): time per step with and without each cache in
# alternating rounds, and each cache's difference from the uncached output (random weights; about 4 minutes).
bench-video-cache: $(VENV)/.ready
	$(PY) bench/video_cache.py

# The GPU set (SD-Turbo, SD 1.5, SDXL layouts, random weights) on a CUDA machine; `--smoke` runs it on the CPU with tiny
# models (about a minute) to check the script. See the script's docstring for splitting it into 10-minute runs.
bench-gpu: $(VENV)/.ready
	$(PY) bench/speed_gpu.py

.venv-sdv/.ready: requirements/bench-sdv.txt
	$(PYTHON) -m venv .venv-sdv
	.venv-sdv/bin/python -m pip install --quiet -r requirements/bench-sdv.txt
	.venv-sdv/bin/python -m pip install --quiet --no-deps stable_diffusion_videos==0.9.2
	touch $@

# A local 2-worker Ray run against the single process (about 8 minutes on 2 cores).
bench-ray: $(VENV)/.ready
	$(PY) bench/ray_render.py

# Extension zips (build/). `build`: the extension alone (the engine in a Python you point it to). `build-light`: plus
# every engine wheel but torch, `build-full`: plus torch, one zip per platform, e.g.
#   make build-light PLATFORMS="linux-x64 windows-x64 macos-arm64"   make build-full TORCH_INDEX=https://download.pytorch.org/whl/cpu
# BLENDER_PYTHON=3.13 builds for Blender 5.1 and later.
PLATFORMS ?= linux-x64
BLENDER_PYTHON ?= 3.11
TORCH_INDEX ?=
WHEEL_ARGS = --python $(BLENDER_PYTHON) $(addprefix --platform ,$(PLATFORMS)) $(if $(TORCH_INDEX),--torch-index $(TORCH_INDEX))
build: $(VENV)/.ready
	$(PY) scripts/build_extension.py

build-light: $(VENV)/.ready
	$(PY) scripts/build_extension.py --flavour light $(WHEEL_ARGS)

build-full: $(VENV)/.ready
	$(PY) scripts/build_extension.py --flavour full $(WHEEL_ARGS)

clean:
	rm -rf build out .pytest_cache

# Real Blender 4.3 binary (needs root, debootstrap and Debian's archive; not part of `make test`).
e2e-real-blender: $(VENV)/.ready
	scripts/real_blender_e2e.sh out/real-blender

# Shot mode on the real Blender 4.3 binary: Blender's render pinned at frames 1 and 24, depth as the VACE control.
e2e-real-blender-shot: $(VENV)/.ready
	scripts/real_blender_shot.sh out/real-blender-shot
