# Two commands on a fresh machine (Python 3.11 and pip): `make demo` and `make test`. Everything else is set up here.
PYTHON ?= python3
VENV := .venv
VENV42 := .venv-bpy42
PY := $(VENV)/bin/python

.PHONY: setup demo test bench bench-ray build clean e2e-real-blender train-shapes

setup: $(VENV)/.ready $(VENV42)/.ready

$(VENV)/.ready: requirements/engine.txt requirements/dev.txt requirements/ray.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/dev.txt
	touch $@

# bpy 4.2 LTS in its own venv: one Python can hold only one bpy.
$(VENV42)/.ready: requirements/bpy42.txt
	$(PYTHON) -m venv $(VENV42)
	$(VENV42)/bin/python -m pip install --quiet -r requirements/bpy42.txt
	touch $@

demo: $(VENV)/.ready
	$(PY) scripts/demo.py --output out/demo

test: setup
	$(PY) -m pytest -q

# Retrain the embedded model (engine/shapes/model, committed); about half an hour on 2 cores, see README.
train-shapes: $(VENV)/.ready
	$(PY) scripts/train_shapes_model.py --output engine/shapes/model

# Benchmarks (not part of `make test`); record results in bench/RESULTS.md.
bench: $(VENV)/.ready
	$(PY) bench/bake.py
	$(PY) bench/audio.py
	$(PY) bench/audio_keys.py

# A local 2-worker Ray run against the single process (about 8 minutes on 2 cores).
bench-ray: $(VENV)/.ready
	$(PY) bench/ray_render.py

build: $(VENV)/.ready
	$(PY) scripts/build_extension.py

clean:
	rm -rf build out .pytest_cache

# Real Blender 4.3 binary (needs root, debootstrap and Debian's archive; not part of `make test`).
e2e-real-blender: $(VENV)/.ready
	scripts/real_blender_e2e.sh out/real-blender
