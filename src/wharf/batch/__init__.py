"""`wharf batch`: scoring a table of rows in chunks across worker processes, resumable (see runner.py)."""
