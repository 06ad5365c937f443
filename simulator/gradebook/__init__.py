"""gradebook pages."""
