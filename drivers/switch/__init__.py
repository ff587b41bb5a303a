"""Ethernet switch drivers (docs/switches.md)."""
