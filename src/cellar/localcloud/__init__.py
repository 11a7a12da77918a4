"""The embedded single-machine cloud the local drivers talk to (servers, volumes, networks, DNS)."""
