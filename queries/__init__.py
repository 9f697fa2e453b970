"""Build the query list (`queries.parquet`) from a Wikipedia dump and WordNet.

    from queries.build import build
    from queries.config import demo_config
    from queries.schema import read_queries
    table = read_queries(build(demo_config(), "queries.parquet"))

Nothing is imported here: `wit --help` imports queries.cli, which must not pull in Ray (queries.build).
"""
