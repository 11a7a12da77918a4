"""The embedded stack engine: Heat semantics for cellar's templates, in process."""
