"""The embedded single-machine cloud the local drivers talk to.

A real cloud on one Linux host, not a simulation: servers are network namespaces on a
bridge with memory and CPU cgroups, volumes are XFS filesystems on loop devices,
security groups are nftables rules inside each server's namespace, and DNS is a real
server on loopback. Its state lives in its own SQLite file (`state.py`), apart from the
control plane's database, and the kernel objects outlive `cellar serve`: on start the
cloud finds its servers again. It needs root and says so (`system.require_root`).
"""
