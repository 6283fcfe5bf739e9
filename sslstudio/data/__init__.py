"""Files → pixels: folder scanning, robust decoding, the decoded cache, the sample dataset.

No torch models and no Qt here; submodules are imported on demand so that
`import sslstudio.data` stays cheap.
"""

from __future__ import annotations


class Cancelled(Exception):
    """Raised when a long data operation stops because its `cancel()` callback said so."""


__all__ = ["Cancelled"]
