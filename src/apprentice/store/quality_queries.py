"""Store queries for feedback quality: judgments with everything the statistics need.

A part of the `Store` gateway (mixed into it); only the store package touches the database.
"""

from __future__ import annotations

from apprentice.store.base import StoreBase


class QualityQueries(StoreBase):
    """Reads for agreement, reliability and bias analyses."""
