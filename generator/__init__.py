"""Serialist: a static site generator for serialized fiction."""

__version__ = "0.1.0"
