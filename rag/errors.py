"""One exception hierarchy for every expected failure, each message naming the thing and the fix."""

from __future__ import annotations

__all__ = [
    "RagError",
    "ConfigError",
    "SourceError",
    "IngestError",
    "IndexNotFoundError",
    "IndexMismatchError",
    "IndexCorruptError",
    "BuildLockedError",
    "QuestionError",
    "StoreUnavailableError",
    "UploadError",
    "FilterError",
    "FetchError",
]


class RagError(Exception):
    """Base class: the CLI prints these without a traceback and exits non-zero."""

    exit_code = 1


class ConfigError(RagError):
    """A setting is out of range or of the wrong type."""

    exit_code = 2


class SourceError(RagError):
    """The articles to index could not be found or none could be read."""

    exit_code = 3


class IngestError(RagError):
    """One file could not be read; the build skips it and reports why."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class IndexNotFoundError(RagError):
    """There is no index at the given folder."""

    exit_code = 4


class IndexMismatchError(RagError):
    """The index was built with another model, dimension or format version."""

    exit_code = 5


class IndexCorruptError(RagError):
    """Index files are missing, truncated or altered."""

    exit_code = 6


class BuildLockedError(RagError):
    """Another build holds the index's lock."""

    exit_code = 7


class QuestionError(RagError):
    """The question is empty or too long."""

    exit_code = 2


class StoreUnavailableError(RagError):
    """The external vector store (a Milvus server, or a Milvus Lite folder another process holds) cannot be used."""

    exit_code = 8


class UploadError(RagError):
    """An uploaded file was refused (type, size or content); nothing was stored."""

    exit_code = 3


class FilterError(RagError):
    """A search filter names a section, outlet or article the index does not have, or a date it cannot read."""

    exit_code = 2


class FetchError(RagError):
    """A web page, feed or sitemap could not be fetched or was refused (address, size, type, robots.txt)."""

    exit_code = 9

    def __init__(self, url: str, reason: str):
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
