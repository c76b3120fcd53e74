"""``python -m comfyx`` is the ``comfyx`` command."""

import sys

from comfyx.cli.main import main

sys.exit(main())
