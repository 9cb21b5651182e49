"""Operator-level adaptation after Grassroots Operator Search (GOS): graph, selection, search."""
