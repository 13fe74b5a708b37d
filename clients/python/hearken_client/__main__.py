"""``python -m hearken_client``: see ``hearken_client.cli``."""

import sys

from .cli import main

sys.exit(main())
