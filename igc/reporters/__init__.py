"""Reporters: bench results to a rich table, JSON, CSV, Markdown or a plot. They read a result's
`to_dict()` and fields only, so they sit below the plugin layer that registers them."""
