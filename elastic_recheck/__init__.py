"""elastic-recheck: classify CI failures against known bugs."""

__version__ = "0.1.0"

from .classify import Classifier  # noqa: E402
from .fingerprints import Fingerprint, load_fingerprints  # noqa: E402
from .search import Hit, SearchBackend  # noqa: E402

__all__ = ["Classifier", "Fingerprint", "Hit", "SearchBackend", "load_fingerprints", "__version__"]
