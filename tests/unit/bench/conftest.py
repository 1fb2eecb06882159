"""The placement study's package (bench/placement/placesim) is on pytest's pythonpath (pyproject.toml)."""
