"""schoology pages."""
