"""provisiond: bare-metal provisioning daemon for HPC and AI clusters."""

__version__ = "0.1.0"
