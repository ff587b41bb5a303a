"""Workflows: what each operation does, as an ordered list of idempotent steps.

The engine runs the steps and persists progress after each one; a step may therefore run twice
(after a crash between its side effect and the record of it) and must be safe to repeat.
"""
