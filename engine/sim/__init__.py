"""The fast simulator for sweeps: numba kernels (``kernels_nb``) and their numpy wrapper (``fastpath``)."""
