"""moto_server without its dashboard's instance tracking.

moto keeps every model object it ever creates in a class-level list (for the
/moto-api dashboard), freed only by a reset. Its ListObjectVersions deep-copies every
version in the bucket on each call, and each copy is tracked: a bucket of 3,000
versions grew by 6.8 MB a listing, and make chaos's trash run (thousands of
listings) took moto past 20 GB. The emulators never use the dashboard or a reset, so
objects here are created untracked and freed when moto drops them.
"""

import sys

from moto.core.common_models import BaseModel
from moto.server import main


def _untracked_new(cls, *args, **kwargs):
    return object.__new__(cls)


BaseModel.__new__ = staticmethod(_untracked_new)

if __name__ == "__main__":
    sys.exit(main())
