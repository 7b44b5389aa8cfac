"""The rules below the checks: stage A's name filters, the dedup maths, the parsing of model-written assertions."""
