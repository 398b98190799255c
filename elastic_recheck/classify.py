"""Which known bugs a build hit: every active fingerprint in one batched pass."""

from __future__ import annotations

from typing import Sequence

from .errors import BackendError
from .fingerprints import Fingerprint
from .search import SearchBackend


class Classifier:
    def __init__(self, backend: SearchBackend, fingerprints: Sequence[Fingerprint]) -> None:
        self.backend = backend
        self.fingerprints = list(fingerprints)

    def classify(self, build_uuid: str) -> list[Fingerprint]:
        """Fingerprints matching the build (voting filter applied), in file order."""
        if not self.backend.build_files(build_uuid):
            raise BackendError(f"build {build_uuid} has no indexed logs")
        queries = [fp.voting_query for fp in self.fingerprints]
        matched = self.backend.match_build(build_uuid, queries)
        return [fp for fp, hit in zip(self.fingerprints, matched) if hit]
