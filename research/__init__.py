"""Research: labels, datasets, torch models, training, tuning, tracking, export.

Installed with the ``[research]`` extra; may import everything, nothing imports it.
"""
