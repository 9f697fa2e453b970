"""pipeline: pool of (image URL, alt text) -> matched/ -> selected/ -> corpus/ (see DESIGN.md, pipeline/)."""

from pipeline.balance import balance
from pipeline.download import download
from pipeline.match import match
from pipeline.run import run

__all__ = ["match", "balance", "download", "run"]
