"""Mail sources: they produce raw messages and acknowledge them only after the commit."""
