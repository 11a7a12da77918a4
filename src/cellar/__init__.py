"""cellar: a database-as-a-service control plane in the line of OpenStack Trove."""

__version__ = "0.1.0"
