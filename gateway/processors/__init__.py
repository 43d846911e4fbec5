"""Processor connectors behind one small interface (see base.py)."""
