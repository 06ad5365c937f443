"""inspector pages."""
