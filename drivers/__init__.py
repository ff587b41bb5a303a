"""Device drivers: BMC (bmc/), Ethernet switch (switch/) and InfiniBand fabric (fabric/).

Drivers speak to devices and translate library errors at their edge; they never touch the
database and never decide lifecycle moves.
"""
