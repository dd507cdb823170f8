"""Strategies as jitted kernels: the whole run stays in Numba, like hftbacktest's ``elapse`` loop.

Each kernel takes the engine state ``S`` and its parameters as plain numbers and
drives the engine's order API itself; each mirrors a Python strategy of the
same name decision for decision, for users who need the last factor of speed.
"""
