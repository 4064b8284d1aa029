"""Reporters: bench results to a rich table, JSON, CSV, Markdown or a plot."""
