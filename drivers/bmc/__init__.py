"""BMC drivers: power and boot-device control of a node through its baseboard controller."""
