"""Document collections: files read into passages, indexed for search, and added to a turn as a context source."""
