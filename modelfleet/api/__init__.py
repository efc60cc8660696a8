"""ModelFleet."""
