"""Pipelines: readers -> transforms -> checks -> dedupe, on Arrow batches. Knows nothing of the lake."""
