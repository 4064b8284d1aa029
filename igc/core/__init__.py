"""Core data types, protocols and the container format."""
