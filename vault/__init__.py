"""Encrypted file vault for Vaultdesk.

Files are encrypted in a streaming, chunked format under a fresh data key per
file; data keys are wrapped by rotating key-encryption keys held in a
:class:`KeyRing`; ciphertext lives in a pluggable :class:`BlobStorage`
(local directory or S3). The package never imports Flask or the app, so it
can be used and tested on its own.

Typical use::

    vault = Vault(storage_from_url("file:///srv/vaultdesk/blobs"),
                  KeyRing.from_directory("instance/keys"))
    stored = vault.put(request.stream, max_size=25 * 1024 * 1024)
    for piece in vault.read_range(stored.blob_id, 0, 1023):
        ...
"""

from __future__ import annotations

from .crypto import (
    CHUNK_SIZE,
    FORMAT_VERSION,
    Decryptor,
    EncryptionResult,
    Header,
    ciphertext_size,
    decrypt_range,
    decrypt_stream,
    encrypt_stream,
    plaintext_size,
    rewrap_header,
)
from .exc import (
    BadLinkToken,
    BlobNotFound,
    ConfigurationError,
    FileTooLarge,
    IntegrityError,
    InvalidBlobId,
    InvalidRange,
    KeyInUseError,
    TamperedError,
    UnknownKeyError,
    VaultError,
)
from .keys import DEFAULT_KEY_DIR, KeyRing, generate_key_id
from .links import LinkSigner, new_link_id
from .storage import (
    BLOB_ID_RE,
    BlobStorage,
    BlobWriter,
    LocalDirectoryStorage,
    Part,
    S3Storage,
    check_blob_id,
    new_blob_id,
    storage_from_url,
)
from .vault import DEFAULT_MIME_TYPE, RewrapReport, StoredFile, Vault, VaultReader

__all__ = [
    "BLOB_ID_RE",
    "CHUNK_SIZE",
    "DEFAULT_KEY_DIR",
    "DEFAULT_MIME_TYPE",
    "FORMAT_VERSION",
    "BadLinkToken",
    "BlobNotFound",
    "BlobStorage",
    "BlobWriter",
    "ConfigurationError",
    "Decryptor",
    "EncryptionResult",
    "FileTooLarge",
    "Header",
    "IntegrityError",
    "InvalidBlobId",
    "InvalidRange",
    "KeyInUseError",
    "KeyRing",
    "LinkSigner",
    "LocalDirectoryStorage",
    "Part",
    "RewrapReport",
    "S3Storage",
    "StoredFile",
    "TamperedError",
    "UnknownKeyError",
    "Vault",
    "VaultError",
    "VaultReader",
    "check_blob_id",
    "ciphertext_size",
    "decrypt_range",
    "decrypt_stream",
    "encrypt_stream",
    "generate_key_id",
    "new_blob_id",
    "new_link_id",
    "plaintext_size",
    "rewrap_header",
    "storage_from_url",
]
