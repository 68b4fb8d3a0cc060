# filmcolor: the two commands of the README.
#   make demo   install; make a sample film and photos; extract, build the dataset, audit
#   make test   install, lint, run the tests
PYTHON ?= python3
DEMO ?= demo_out

.PHONY: install demo test lint bench

install:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[test,ray]'

demo: install
	$(PYTHON) cli.py sample-film $(DEMO)/films/sample_film.mp4 --seconds 60
	$(PYTHON) cli.py sample-images $(DEMO)/photos
	$(PYTHON) cli.py extract-frames $(DEMO)/films/sample_film.mp4 --out $(DEMO)/data
	$(PYTHON) cli.py build-dataset $(DEMO)/films $(DEMO)/photos --out $(DEMO)/data \
		--val-fraction 0.25 --test-fraction 0.25 --split-by shot
	$(PYTHON) cli.py audit $(DEMO)/data
	$(PYTHON) -c "import manifests; df, root = manifests.load_frames('$(DEMO)/data'); \
	print(df.groupby(['source_kind', 'split', 'status'], dropna=False).size().to_string())"

lint: install
	$(PYTHON) -m ruff check .

test: install
	$(PYTHON) -m ruff check .
	$(PYTHON) -m pytest -q

bench: install
	$(PYTHON) bench/bench_extract.py
	$(PYTHON) bench/bench_shots.py
