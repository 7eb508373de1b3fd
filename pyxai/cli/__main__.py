"""``python -m pyxai.cli``: the ``pyxai`` command."""

import sys

from pyxai.cli import main

sys.exit(main())
