"""Build the query list (`queries.parquet`) from a Wikipedia dump and WordNet.

    from queries import build, demo_config, read_queries
    table = read_queries(build(demo_config(), "queries.parquet"))
"""

from queries.build import build
from queries.config import QueriesConfig, demo_config
from queries.schema import read_queries

__all__ = ["QueriesConfig", "build", "demo_config", "read_queries"]
