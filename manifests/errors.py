"""Errors of the manifests package: every one says what is wrong and how to fix it."""

from __future__ import annotations


class ManifestError(Exception):
    """Base class: a manifest cannot be read, validated or written."""


class ManifestNotFoundError(ManifestError):
    """No manifest where one was expected."""


class SchemaError(ManifestError):
    """A manifest lacks columns, has wrong types, or carries another schema version."""
