"""The version of llmcells (one place: the package, the CLI, the service and traces read it)."""

__version__ = "0.1.0"
