"""The Documents pane: collections of your files to chat with (pane.py), their background jobs (jobs.py), one
indexing run at a time (indexer.py) and the watch on their folders (watcher.py)."""
