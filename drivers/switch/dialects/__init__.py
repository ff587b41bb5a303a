"""One module per switch CLI dialect: pure command rendering and output parsing."""
