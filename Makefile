# filmcolor: the two commands of the README.
#   make demo   install; sample film + photos -> extract, build-dataset, audit, train, colorize
#   make test   install, lint, run the tests
# The virtual environment of the README (.venv) when there is one; else python3.
PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
DEMO ?= demo_out

.PHONY: install demo test lint bench

install:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[test,ray,survey]'

demo: install
	test -f $(DEMO)/films/sample_film.mp4 || \
		$(PYTHON) cli.py sample-film $(DEMO)/films/sample_film.mp4 --seconds 60
	$(PYTHON) cli.py sample-images $(DEMO)/photos
	$(PYTHON) cli.py extract-frames $(DEMO)/films/sample_film.mp4 --out $(DEMO)/data
	$(PYTHON) cli.py build-dataset $(DEMO)/films $(DEMO)/photos --out $(DEMO)/data \
		--val-fraction 0.25 --test-fraction 0.25 --split-by shot
	$(PYTHON) cli.py audit $(DEMO)/data
	$(PYTHON) -c "import manifests; df, root = manifests.load_frames('$(DEMO)/data'); \
	print(df.groupby(['source_kind', 'split', 'status'], dropna=False).size().to_string())"
	rm -rf $(DEMO)/runs/base  # the demo's own run: every `make demo` trains it afresh
	$(PYTHON) cli.py train --data $(DEMO)/data --out $(DEMO)/runs/base --arch eccv16 \
		--steps 60 --size 64 --batch-size 8 --lr 3e-4 --val-every 20 --save-every 20 \
		--workers 1 --device cpu
	$(PYTHON) cli.py sample-images $(DEMO)/bw --grey
	$(PYTHON) cli.py sample-film $(DEMO)/bw/bw_film.mp4 --seconds 5 --size 256x144 --fps 12 \
		--grey --seed 2
	$(PYTHON) cli.py colorize $(DEMO)/bw/coffee.png $(DEMO)/bw/bw_film.mp4 \
		--checkpoint $(DEMO)/runs/base/last.pt --out $(DEMO)/colorized --device cpu --smooth 0.2
	@echo
	@echo "Done. Open $(DEMO)/data/audit/index.html (the frames, shot by shot) and look in"
	@echo "$(DEMO)/colorized/. The demo's network trained for 60 steps on the CPU: its colours"
	@echo "are a faint sepia wash, not real colours. Real colours need a real training run:"
	@echo "many films and still images, hundreds of thousands of steps on a GPU, best started"
	@echo "from Zhang et al.'s released weights (--init-zhang): the paper's recipe in"
	@echo "README.md ('The colorizer') and docs/training.md."

lint: install
	$(PYTHON) -m ruff check .

test: install
	$(PYTHON) -m ruff check .
	$(PYTHON) -m pytest -q -n 2

bench: install
	$(PYTHON) bench/bench_extract.py
	$(PYTHON) bench/bench_shots.py
	$(PYTHON) bench/bench_build.py
	$(PYTHON) bench/bench_soft_encode.py
	$(PYTHON) bench/bench_colorize.py
