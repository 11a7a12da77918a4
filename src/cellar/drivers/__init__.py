"""Drivers: one base module per cloud service, and implementations (fake, local, openstack).

Resource managers receive drivers through `cellar.drivers.registry.Services`; they never
import a concrete driver.
"""
