"""The real-architecture zoo (issue 11): builders, harness, tolerance study; see docs/zoo.md."""
