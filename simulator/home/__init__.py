"""The landing page at ``/``: where everything is, for a person or a script."""
