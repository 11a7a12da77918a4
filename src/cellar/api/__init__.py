"""The REST API: Trove's v1.0 routes over cellar's persistence functions.

`create_app(settings)` builds the application; nothing is built at import time.
"""

from cellar.api.app import create_app

__all__ = ["create_app"]
