"""Firmware compatibility database: version formats, the catalog and its rules, evaluation.

Owns judging reported firmware against the catalog; never talks to devices. (Its modules land
with the firmware work; the package exists so the layout and tooling are fixed from the start.)
"""
