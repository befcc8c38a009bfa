"""``python -m autocompress`` is the ``autocompress`` command."""

import sys

from autocompress.cli import main

sys.exit(main())
