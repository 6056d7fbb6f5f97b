"""Everything that reads or writes the database or the blob store."""
