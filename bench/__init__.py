"""icefloe benchmarks: `python -m bench` (add `--quick` for a scaled-down smoke run, `--only N`).

1. land -> queryable latency of a running worker (`icefloe run`)
2. 200 small CSVs: icefloe (batched commits) vs raw pyiceberg one commit per file
3. one 2M-row CSV: icefloe vs raw pyiceberg vs DuckDB CSV -> Parquet

Results print as a table and go to `.bench/results.json` and `.bench/results.md`.
"""
