"""`S3`: one endpoint's botocore client with every operation the rest of dr-tasks uses, mixed in by job."""

from __future__ import annotations

from .listing import ListingMixin
from .reads import ReadsMixin
from .streaming import StreamingMixin
from .writes import WritesMixin


class S3(ListingMixin, ReadsMixin, WritesMixin, StreamingMixin):
    """A botocore S3 client for one endpoint, sized for `concurrency` parallel requests.

    Listings (listing.py), reads with their one retry helper (reads.py),
    writes (writes.py) and cross-endpoint streamed copies (streaming.py).
    Bulk per-object work goes through an engine (engine.py), which picks
    awscrt or these methods once.
    """
