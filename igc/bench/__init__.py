"""The benchmark: running compressors side by side (`run`), where images come from (`sources`),
sharding over worker processes (`shard`), the speed of igc's runtime (`speed`), the machine it ran
on (`environment`) and reporters (`reporters`).

(`igc.bench`, the attribute, is the library's bench function, igc/api.py; this package is
`igc.bench.run` and its siblings.)
"""
