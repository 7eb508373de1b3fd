"""Progress bars of the command line: tqdm on a terminal, nothing with ``--quiet`` or when piped."""

from __future__ import annotations

import sys
from typing import Any


def bar(total: int, desc: str, quiet: bool = False, **kw: Any) -> Any:
    """A tqdm bar on stderr, disabled when ``quiet`` or stderr is not a terminal."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=quiet or not sys.stderr.isatty(), leave=False,
                dynamic_ncols=True, file=sys.stderr, **kw)
