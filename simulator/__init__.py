"""Clever Grade Passback Simulator: emulated Clever and fake Schoology for partner apps."""

__version__ = "0.1.0"
