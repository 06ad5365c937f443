"""The emulated Clever: OAuth, the data API and the grades endpoint."""
