"""wm_fast: World Models (Ha & Schmidhuber 2018) with a compiled dream engine."""

__version__ = "0.1.0"
