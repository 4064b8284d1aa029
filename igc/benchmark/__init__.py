"""The benchmark: running compressors side by side (`run`), where images come from (`sources`),
sharding over worker processes (`shard`), the speed of igc's runtime (`speed`) and the machine it
ran on (`environment`). Every compressor it runs is made by igc/plugins/compose.py, as for the CLI
and the API; its results are written by the reporters (igc/reporters).

(`igc.bench` is the library's bench function, igc/api.py; this package has another name so that
importing it never rebinds that attribute.)
"""
