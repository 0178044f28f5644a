"""Timings of the kit on real sandbox hosts: `python -m bench.run --help`."""
