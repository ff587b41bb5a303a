"""One module per lab switch CLI dialect (provisiond/lab/switch.py holds the server)."""
