"""Reference implementations that the tests check the library against.

They are written for clarity, not speed: ``cci_reference_loop`` is CCI as a direct loop over
blocks, heads and rows; ``invrat_game_optimum`` enumerates the InvRat game's exact optimum on the
synthetic ``word-noise`` task. Tests import them as ``oracles.<name>`` (``pythonpath = ["tests"]``
in pyproject.toml); benchmarks load them through ``benchmarks/common.py``.
"""
