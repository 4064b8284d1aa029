"""The engines that compute ImageGPT's probabilities: numerics 0/1 (float, `runtime.py` with the
fused kernels of `kernels.py`) and numerics 2 (integers: the rules and reference engine in
`integer.py`, the numba CPU engine in `integer_cpu.py`, the torch/CUDA engine in
`integer_torch.py`, chosen in `engines.py`). They import only igc.core and igc.errors; igc.models
finds and loads the models and hands their weights to these engines."""
