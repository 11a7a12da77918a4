"""Orchestration: stack templates (HOT builders), the StackService protocol, the embedded
local engine and real Heat through openstacksdk (`heat.py`, the only importer of it here).
"""
