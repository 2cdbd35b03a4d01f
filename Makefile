# Two entry points (see README): `make demo` runs the main job on sample footage with the
# built-in model; `make test` runs the test suite. Both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench clean

$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

demo: $(VENV)/.installed
	$(PY) -m pipeline.sample_footage --output sample_footage
	$(PY) -m pipeline.run --input sample_footage --output out/demo --times_to_interpolate 2 --scene_cuts

# One worker per core, each test file on one worker (files share their slow fixtures): much of
# the suite is single-threaded TensorFlow tracing, so 2 cores run it ~1.9x faster than 1 worker.
test: $(VENV)/.installed
	$(PY) -m pytest -q -n auto --dist loadfile tests

bench: $(VENV)/.installed
	$(PY) bench/bench_film_net.py
	$(PY) bench/bench_pipeline.py ratio
	$(PY) bench/bench_pipeline.py rss
	$(PY) bench/bench_quality.py
	$(PY) bench/bench_train.py

clean:
	rm -rf out sample_footage
