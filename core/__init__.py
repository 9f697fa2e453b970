"""The ground floor: what every stage stands on, importing nothing of ours.

storage (local paths and bucket URIs), artifacts (provenance, atomic writes, _SUCCESS.json), errors
(WitError and exit codes), config (frozen dataclasses across Ray), options (CLI options from config
fields), validate (input checks at a command's boundary), stage (reuse-or-run), raylocal (start or
attach to Ray), loopback (an HTTP server on 127.0.0.1 for the demo and the tests).
"""
