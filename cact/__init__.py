"""The composition root: the ``cact`` command, the demo and the commands that span packages.

The only package that imports ``producers``, ``sinks`` and ``streams`` together (tests/unit/test_layers.py).
"""
