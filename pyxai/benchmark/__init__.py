"""Benchmarks behind ``pyxai bench``: see :mod:`pyxai.benchmark.core`. One module per method family
registers its workloads with :func:`pyxai.benchmark.core.register`."""
