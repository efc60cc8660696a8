"""ModelFleet data-plane workers: conversion and validation Jobs (`modelfleet-worker`).

Nothing is re-exported here: `modelfleet-worker convert-validate` starts its paddle2onnx child
before importing anything heavy (see `modelfleet.workers.cli`). The contracts with the operator
(requests, reasons, reports, the comparison rule) live in the shared core.
"""
