"""The lab: a simulated rack for the demo, the tests and operators without hardware."""
