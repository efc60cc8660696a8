"""The ModelConversion controller: planner (pure), observations (reads), Job builders, and the
controller pass that joins them."""
