"""`python -m prefect_nanobanana.emulator --port P`: the same as `nanobanana emulator`."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
