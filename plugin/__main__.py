"""`python -m plugin` is the `defender-ip` command."""

import sys

from plugin.cli import main

sys.exit(main())
