"""Pure domain: value objects, enums, status derivation, specs and errors.

Nothing here imports any other part of cellar or any I/O library.
"""
