"""pipeline: pool of (image URL, alt text) -> matched/ -> selected/ -> corpus/ (see ARCHITECTURE.md, pipeline/).

The recipes are `pipeline.match.match`, `pipeline.balance.balance`, `pipeline.download.download` and
`pipeline.run.run`. Nothing is imported here: `wit --help` imports pipeline.cli, which must not pull in
Ray Data through them.
"""
