"""The generated shapes corpus lives in bench/shapes_corpus.py (bench/train.py and bench/fit_gpu.py use
it too); the trainer tests import it by this name."""

from bench.shapes_corpus import BACKGROUNDS, COLOURS, SHAPES, draw, jpeg, write_corpus, write_image_folder  # noqa: F401
