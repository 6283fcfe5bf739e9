"""`python -m sslstudio.resources install-desktop`: see sslstudio/resources/__init__.py."""

import sys

from sslstudio.resources import main

sys.exit(main())
