"""Developer tooling: the local control plane (`modelfleet dev up`), the dev job runner, the
demo and the sample models. The product (shared core, operator, workers, agent) never imports
this package; import-linter checks that in `make lint`.
"""
