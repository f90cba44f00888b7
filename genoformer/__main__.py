"""``python -m genoformer`` is the ``genoformer`` command."""

import sys

from genoformer.cli import main

sys.exit(main())
