"""Store queries for the studio: annotator credentials, assignment leasing, submissions.

A part of the `Store` gateway (mixed into it); only the store package touches the database.
"""

from __future__ import annotations

from apprentice.store.base import StoreBase


class AssignmentQueries(StoreBase):
    """Leasing comparisons to annotators and recording what they submit."""
