"""wit-clip: a WIT-style image-text corpus from the web, guided by Wikipedia, and CLIP trained on it."""

__version__ = "0.1.0"
