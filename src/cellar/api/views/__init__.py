"""What a client gets: response models, and builders from rows (Trove's `views.py`)."""
