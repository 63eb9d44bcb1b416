"""The streaming multipart reader: real bodies from werkzeug's encoder, and a real Flask route."""

from __future__ import annotations

import hashlib
import io
import json
import random
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest
import werkzeug.formparser
from flask import Flask, jsonify, request
from werkzeug.datastructures import Headers
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartEncoder, Preamble
from werkzeug.test import EnvironBuilder, run_wsgi_app

from app.files.multipart import (
    BLOCK_SIZE,
    FilePart,
    FormField,
    UploadError,
    iter_parts,
)
from vault.keys import KeyRing
from vault.storage import LocalDirectoryStorage
from vault.vault import Vault

# Shaped like Chrome's, so a file can contain pieces of it.
BOUNDARY = "----WebKitFormBoundary7MA4YWxkTrZu0gW"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def environ_body(data: dict[str, Any]) -> tuple[BinaryIO, str]:
    """Encode ``data`` the way werkzeug's test client does; files as ``(stream, name)``."""
    environ = EnvironBuilder(method="POST", data=data).get_environ()
    return environ["wsgi.input"], environ["CONTENT_TYPE"]


def encode(items: list[tuple[str, str | tuple[bytes, str]]]) -> bytes:
    """Encode fields and ``(bytes, filename)`` files in exactly the given order.

    Uses werkzeug's own encoder; ``encode_multipart`` would group repeated names.
    """
    encoder = MultipartEncoder(BOUNDARY.encode())
    body = bytearray(encoder.send_event(Preamble(data=b"")))
    for name, value in items:
        if isinstance(value, tuple):
            content, filename = value
            headers = Headers([("Content-Type", "text/plain")])
            body += encoder.send_event(File(name=name, filename=filename, headers=headers))
        else:
            content = value.encode()
            body += encoder.send_event(Field(name=name, headers=Headers()))
        body += encoder.send_event(Data(data=content, more_data=False))
    body += encoder.send_event(Epilogue(data=b""))
    return bytes(body)


def collect(parts: Iterator[FormField | FilePart]) -> list[tuple[Any, ...]]:
    """What a caller that reads everything sees, in order."""
    seen: list[tuple[Any, ...]] = []
    for part in parts:
        if isinstance(part, FilePart):
            seen.append(("file", part.name, part.filename, part.content_type, part.read()))
        else:
            seen.append(("field", part.name, part.value))
    return seen


class TrickleStream(io.RawIOBase):
    """A request body that arrives at most ``step`` bytes per read, like a slow network."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self._step, len(self._data) - self._pos)
        buffer[:count] = self._data[self._pos : self._pos + count]
        self._pos += count
        return count


class GeneratedStream(io.RawIOBase):
    """A request body produced piece by piece by a generator, never held whole."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._left:
            self._left = next((piece for piece in self._pieces if piece), b"")
        count = min(len(buffer), len(self._left))
        buffer[:count] = self._left[:count]
        self._left = self._left[count:]
        return count


def test_fields_and_files_arrive_in_the_order_sent() -> None:
    body = encode(
        [
            ("subject", "Printer on fire"),
            ("attachment", (b"first file\n" * 100, "log.txt")),
            ("note", "Grüße ✓ — see both files"),
            ("attachment", (bytes(range(256)) * 40, "dump.bin")),
            ("priority", "high"),
        ]
    )

    seen = collect(iter_parts(io.BytesIO(body), MULTIPART))

    assert seen == [
        ("field", "subject", "Printer on fire"),
        ("file", "attachment", "log.txt", "text/plain", b"first file\n" * 100),
        ("field", "note", "Grüße ✓ — see both files"),
        ("file", "attachment", "dump.bin", "text/plain", bytes(range(256)) * 40),
        ("field", "priority", "high"),
    ]


def test_body_from_werkzeugs_test_client_encoder() -> None:
    stream, content_type = environ_body(
        {"subject": "Hello", "attachment": (io.BytesIO(b"%PDF-1.7 fake"), "scan.pdf")}
    )

    seen = collect(iter_parts(stream, content_type))

    assert seen == [
        ("field", "subject", "Hello"),
        ("file", "attachment", "scan.pdf", "application/pdf", b"%PDF-1.7 fake"),
    ]


def test_zero_byte_file_is_a_file_that_reads_nothing() -> None:
    body = encode([("empty", (b"", "empty.txt")), ("after", "still parsed")])
    parts = iter_parts(io.BytesIO(body), MULTIPART)

    part = next(parts)
    assert isinstance(part, FilePart)
    assert part.filename == "empty.txt"
    assert not part.is_empty_selection
    assert part.readinto(bytearray(16)) == 0
    assert part.read(16) == b""
    assert next(parts) == FormField("after", "still parsed")
    assert list(parts) == []


def test_file_input_left_empty_is_flagged_without_consuming_anything() -> None:
    stream, content_type = environ_body(
        {
            "nothing": (io.BytesIO(b""), ""),
            "nameless": (io.BytesIO(b"but has bytes"), ""),
            "named": (io.BytesIO(b""), "named.txt"),
        }
    )

    flags = {}
    for part in iter_parts(stream, content_type):
        assert isinstance(part, FilePart)
        flags[part.name] = (part.is_empty_selection, part.read())

    assert flags == {
        "nothing": (True, b""),
        "nameless": (False, b"but has bytes"),
        "named": (False, b""),
    }


def lookalikes(boundary: bytes) -> bytes:
    """Bytes that resemble a delimiter but are not one, even for a lenient parser."""
    pieces = [
        b"\r\n--",
        b"\r\n--" + boundary[:-1],
        b"--" + boundary,
        b"\r\n--" + boundary + b"x",
        b"\r\n--" + boundary + b" x",
        b"\r\n-" + boundary,
        b"\r\n\r\n",
        b"\r",
        b"\n",
        b"\r\n--" + boundary[: len(boundary) // 2] + b"\r\n",
    ]
    return b"|".join(pieces) + b"|"


@pytest.mark.parametrize(
    ("step", "repeat"),
    [(1, 3), (7, 10), (4096, 200), (BLOCK_SIZE, 2000)],
    ids=["1-byte-reads", "7-byte-reads", "4k-reads", "64k-reads"],
)
def test_boundary_lookalikes_inside_files_are_kept(step: int, repeat: int) -> None:
    pattern = lookalikes(BOUNDARY.encode())
    ends_in_crlf = pattern * repeat + b"\r\n"
    ends_in_prefix = pattern * repeat + b"\r\n--" + BOUNDARY.encode()[:-1]
    body = encode(
        [
            ("a", (ends_in_crlf, "a.bin")),
            ("b", (ends_in_prefix, "b.bin")),
            ("after", "intact"),
        ]
    )
    if step == BLOCK_SIZE:
        assert len(body) > 3 * BLOCK_SIZE  # the look-alikes straddle block edges

    seen = collect(iter_parts(TrickleStream(body, step), MULTIPART))

    assert seen == [
        ("file", "a", "a.bin", "text/plain", ends_in_crlf),
        ("file", "b", "b.bin", "text/plain", ends_in_prefix),
        ("field", "after", "intact"),
    ]


def test_every_split_of_the_body_into_two_reads_decodes_the_same() -> None:
    """Network reads end anywhere; e.g. between the two dashes of the closing delimiter.

    werkzeug's decoder on its own appends a stray CR to the last part then
    (pallets/werkzeug#3285); the reader must not let that through.
    """
    body = encode([("a", (b"file\r\n", "a.txt")), ("b", (b"", "b.txt")), ("last", "value")])
    expected = [
        ("file", "a", "a.txt", "text/plain", b"file\r\n"),
        ("file", "b", "b.txt", "text/plain", b""),
        ("field", "last", "value"),
    ]

    wrong = {
        cut: seen
        for cut in range(1, len(body))
        if (seen := collect(iter_parts(GeneratedStream(iter([body[:cut], body[cut:]])), MULTIPART)))
        != expected
    }

    assert wrong == {}


def test_random_read_boundaries_never_change_the_result() -> None:
    rng = random.Random(5)
    edge = BOUNDARY.encode()
    items: list[tuple[str, str | tuple[bytes, str]]] = [
        ("empty_field", ""),
        ("empty_file", (b"", "e.bin")),
        ("cr", "\r"),
        ("ends_in_crlf", (b"x\r\n", "crlf.bin")),
        ("lookalikes", (lookalikes(edge) * 3, "look.bin")),
        ("prefix", (b"\r\n--" + edge[:-1], "prefix.bin")),
        ("dash", "-"),
    ]
    body = encode(items)
    expected = collect(iter_parts(io.BytesIO(body), MULTIPART))
    assert [part[-1] for part in expected] == [
        value if isinstance(value, str) else value[0] for _, value in items
    ]

    for _ in range(300):
        cuts = sorted(rng.sample(range(1, len(body)), k=rng.randint(1, 40)))
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        assert collect(iter_parts(GeneratedStream(iter(pieces)), MULTIPART)) == expected, cuts


@pytest.mark.parametrize("step", [1, 3, BLOCK_SIZE])
def test_whitespace_padding_after_boundaries_is_not_part_data(step: int) -> None:
    body = (
        f"--{BOUNDARY} \t \r\n"
        'Content-Disposition: form-data; name="doc"; filename="a.txt"\r\n\r\n'
        f"file body\r\n--{BOUNDARY}  \r\n"
        'Content-Disposition: form-data; name="note"\r\n\r\n'
        f"note body\r\n--{BOUNDARY}--  \r\n"
    ).encode()

    assert collect(iter_parts(TrickleStream(body, step), MULTIPART)) == [
        ("file", "doc", "a.txt", "", b"file body"),
        ("field", "note", "note body"),
    ]


def test_64_mib_file_streams_through_readinto_with_flat_memory() -> None:
    size = 64 * 1024 * 1024
    source = hashlib.sha256()

    def body() -> Iterator[bytes]:
        encoder = MultipartEncoder(BOUNDARY.encode())
        yield encoder.send_event(Preamble(data=b""))
        yield encoder.send_event(Field(name="before", headers=Headers()))
        yield encoder.send_event(Data(data=b"x", more_data=False))
        headers = Headers([("Content-Type", "application/octet-stream")])
        yield encoder.send_event(File(name="big", filename="big.bin", headers=headers))
        rng = random.Random(20240611)
        sent = 0
        while sent < size:
            chunk = rng.randbytes(min(50_000, size - sent))  # not block aligned on purpose
            source.update(chunk)
            sent += len(chunk)
            yield encoder.send_event(Data(data=chunk, more_data=True))
        yield encoder.send_event(Data(data=b"", more_data=False))
        yield encoder.send_event(Field(name="after", headers=Headers()))
        yield encoder.send_event(Data(data=b"done", more_data=False))
        yield encoder.send_event(Epilogue(data=b""))

    received = hashlib.sha256()
    buffer = bytearray(BLOCK_SIZE)
    seen: list[Any] = []
    started = time.perf_counter()
    tracemalloc.start()
    try:
        for part in iter_parts(GeneratedStream(body()), MULTIPART):
            if isinstance(part, FormField):
                seen.append(part)
                continue
            total = 0
            while count := part.readinto(buffer):
                received.update(memoryview(buffer)[:count])
                total += count
            seen.append((part.filename, total))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - started

    assert seen == [FormField("before", "x"), ("big.bin", size), FormField("after", "done")]
    assert received.hexdigest() == source.hexdigest()
    assert peak < 2 * 1024 * 1024, f"peak {peak} bytes"
    print(f"64 MiB upload: peak traced memory {peak / 1024:.0f} KiB, {elapsed:.2f} s")


def test_skipped_and_half_read_files_are_drained_and_refuse_later_reads() -> None:
    big = random.Random(7).randbytes(300_000)
    body = encode(
        [
            ("skipped", (big, "skipped.bin")),
            ("between", "one"),
            ("half", (big, "half.bin")),
            ("also_between", "two"),
            ("whole", (b"read me", "whole.txt")),
        ]
    )
    parts = iter_parts(io.BytesIO(body), MULTIPART)

    skipped = next(parts)
    assert next(parts) == FormField("between", "one")
    half = next(parts)
    assert isinstance(half, FilePart)
    assert half.read(10) == big[:10]
    assert next(parts) == FormField("also_between", "two")
    whole = next(parts)
    assert isinstance(whole, FilePart)
    assert whole.read() == b"read me"
    assert list(parts) == []

    assert isinstance(skipped, FilePart)
    with pytest.raises(ValueError, match="skipped"):
        skipped.read(1)
    with pytest.raises(ValueError, match="skipped"):
        half.readinto(bytearray(10))
    assert whole.read() == b""  # fully read before moving on: plain end of file


ODD_NAMES = [
    "../../etc/passwd",
    "C:\\x\\y.txt",
    "\\\\server\\share\\a.txt",
    "bell\x07 esc\x1b[31m del\x7f tab\t nul-ish\x01.txt",
    "invoice\u202etxt.exe",
    "n" * 296 + ".pdf",
    "Müller – Straße.pdf",
    " leading and trailing spaces ",
    "semi;colon=equals.txt",
]


@pytest.mark.parametrize("filename", ODD_NAMES, ids=range(len(ODD_NAMES)))
def test_odd_filenames_are_kept_exactly_as_sent(filename: str) -> None:
    stream, content_type = environ_body({"doc": (io.BytesIO(b"content"), filename)})

    (part,) = list_files(iter_parts(stream, content_type))

    assert part == (filename, b"content")


def list_files(parts: Iterator[FormField | FilePart]) -> list[tuple[str, bytes]]:
    return [(part.filename, part.read()) for part in parts if isinstance(part, FilePart)]


@pytest.mark.parametrize(
    ("disposition", "expected"),
    [
        ('filename="say %22hi%22%0D%0A.txt"', 'say "hi"\r\n.txt'),
        ('filename="ends in backslash\\"', "ends in backslash\\"),
        ('filename="rfc \\"quoted\\".txt"', 'rfc "quoted".txt'),
        ("filename=unquoted.txt", "unquoted.txt"),
        (
            "filename=\"Muller.pdf\"; filename*=UTF-8''M%C3%BCller%20%E2%80%93%20Stra%C3%9Fe.pdf",
            "Müller – Straße.pdf",
        ),
    ],
    ids=["html-escapes", "trailing-backslash", "backslash-quote", "token", "rfc5987"],
)
def test_filenames_as_browsers_and_other_clients_encode_them(
    disposition: str, expected: str
) -> None:
    body = (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="doc"; {disposition}\r\n'
        "Content-Type: application/pdf\r\n\r\n"
        f"body\r\n--{BOUNDARY}--\r\n"
    ).encode()

    assert list_files(iter_parts(io.BytesIO(body), MULTIPART)) == [(expected, b"body")]


def cut_body() -> tuple[bytes, bytes]:
    """A body and its file's content; callers cut the body short somewhere."""
    content = random.Random(3).randbytes(200_000)
    body = encode([("subject", "Broken upload"), ("attachment", (content, "report.pdf"))])
    return body, content


def test_body_cut_off_inside_a_file_fails_when_read_with_a_clear_message() -> None:
    body, content = cut_body()
    cut = body.index(content) + len(content) // 2
    parts = iter_parts(io.BytesIO(body[:cut]), MULTIPART)
    assert next(parts) == FormField("subject", "Broken upload")
    part = next(parts)
    assert isinstance(part, FilePart)

    received = bytearray()
    with pytest.raises(UploadError) as caught:
        while chunk := part.read(BLOCK_SIZE):
            received += chunk

    assert caught.value.status == 422
    assert caught.value.message == (
        "The upload ended before the file “report.pdf” was complete; the connection was "
        "probably interrupted. Please try again."
    )
    assert content.startswith(received)
    assert len(received) < len(content)


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("after-file-bytes", "ended before the file “report.pdf” was complete"),
        ("in-field", "ended before the field “subject” was complete"),
        ("in-headers", "ended before the form data was complete"),
        ("nothing", "The upload is empty"),
    ],
)
def test_body_cut_off_elsewhere_is_an_upload_error(where: str, message: str) -> None:
    body, content = cut_body()
    cut = {
        "after-file-bytes": body.index(content) + len(content),
        "in-field": body.index(b"Broken") + 3,
        "in-headers": body.index(b'name="attachment"'),
        "nothing": 0,
    }[where]

    with pytest.raises(UploadError) as caught:
        collect(iter_parts(io.BytesIO(body[:cut]), MULTIPART))

    assert message in caught.value.message


@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        ("application/json", "must be sent as multipart/form-data, not “application/json”"),
        ("", "must be sent as multipart/form-data, not no content type"),
        ("application/x-www-form-urlencoded", "multipart/form-data, not"),
        ("multipart/mixed; boundary=abc", "multipart/form-data, not “multipart/mixed”"),
        ("multipart/form-data", "has no boundary"),
        ("multipart/form-data; boundary=", "has no boundary"),
        ("multipart/form-data; charset=utf-8", "has no boundary"),
        ("multipart/form-data; boundary=" + "b" * 201, "boundary is not valid"),
    ],
)
def test_wrong_content_type_or_missing_boundary_is_refused_at_once(
    content_type: str, message: str
) -> None:
    body = encode([("subject", "hi")])
    with pytest.raises(UploadError) as caught:
        iter_parts(io.BytesIO(body), content_type)  # not even iterated
    assert message in caught.value.message


def test_body_with_a_different_boundary_is_malformed() -> None:
    body = encode([("subject", "hi")])
    with pytest.raises(UploadError, match="does not contain the boundary"):
        list(iter_parts(io.BytesIO(body), "multipart/form-data; boundary=somethingElse"))


def test_too_many_files_is_refused_after_the_allowed_ones() -> None:
    body = encode([(f"f{i}", (b"x", f"{i}.txt")) for i in range(4)])
    names = []
    with pytest.raises(UploadError) as caught:
        for part in iter_parts(io.BytesIO(body), MULTIPART, max_files=3):
            names.append(part.name)
    assert names == ["f0", "f1", "f2"]
    assert caught.value.message == "Too many files: at most 3 can be uploaded at once."


def test_default_limit_is_twenty_files() -> None:
    ok = encode([("f", (b"", "a.txt"))] * 20)
    assert len(list_files(iter_parts(io.BytesIO(ok), MULTIPART))) == 20
    too_many = encode([("f", (b"", "a.txt"))] * 21)
    with pytest.raises(UploadError, match="at most 20"):
        list_files(iter_parts(io.BytesIO(too_many), MULTIPART))


def test_text_field_larger_than_64_kib_is_refused() -> None:
    fits = encode([("body", "é" * (32 * 1024))])  # 64 KiB once encoded as UTF-8
    assert collect(iter_parts(io.BytesIO(fits), MULTIPART)) == [
        ("field", "body", "é" * (32 * 1024))
    ]
    too_big = encode([("body", "a" * (64 * 1024 + 1))])
    with pytest.raises(UploadError) as caught:
        collect(iter_parts(io.BytesIO(too_big), MULTIPART))
    assert caught.value.message == (
        "The form field “body” is too long: at most 64 KiB of text is accepted per field."
    )


def test_more_than_a_hundred_fields_is_refused() -> None:
    ok = encode([(f"k{i}", "v") for i in range(100)])
    assert len(collect(iter_parts(io.BytesIO(ok), MULTIPART))) == 100
    too_many = encode([(f"k{i}", "v") for i in range(101)])
    with pytest.raises(UploadError, match="Too many form fields: at most 100"):
        collect(iter_parts(io.BytesIO(too_many), MULTIPART))


def test_text_field_that_is_not_utf8_is_refused() -> None:
    body = encode([("subject", "PLACEHOLDER")]).replace(b"PLACEHOLDER", b"caf\xe9")
    with pytest.raises(UploadError, match="“subject” is not valid UTF-8"):
        collect(iter_parts(io.BytesIO(body), MULTIPART))


def test_oversized_part_headers_are_refused_without_buffering_the_body() -> None:
    body = f"--{BOUNDARY}\r\nX-Padding: {'a' * 100_000}\r\n".encode()
    with pytest.raises(UploadError, match="headers are longer than 16 KiB"):
        collect(iter_parts(io.BytesIO(body), MULTIPART))


# -- through a real Flask route, the way the app uses it --------------------------------


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    return Vault(LocalDirectoryStorage(tmp_path / "blobs"), KeyRing.generate())


@pytest.fixture
def upload_app(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> Flask:
    """A bare Flask app whose upload view streams files into the vault.

    werkzeug's spooling form parser is booby-trapped so any route that reaches it
    (directly or through ``request.form``/``request.files``) fails loudly.
    """

    def spooling_parser_used(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("werkzeug's spooling form parser was used")

    monkeypatch.setattr(werkzeug.formparser.FormDataParser, "parse", spooling_parser_used)
    app = Flask(__name__)
    app.testing = True  # let the booby trap's AssertionError reach the test

    @app.post("/upload")
    def upload() -> Any:
        fields: dict[str, str] = {}
        files = []
        for part in iter_parts(request.stream, request.content_type or ""):
            if isinstance(part, FormField):
                fields[part.name] = part.value
            elif not part.is_empty_selection:
                stored = vault.put(part, max_size=32 * 1024 * 1024)
                files.append(
                    {
                        "field": part.name,
                        "filename": part.filename,
                        "blob_id": stored.blob_id,
                        "size": stored.size,
                        "sha256": stored.sha256,
                    }
                )
        return jsonify(fields=fields, files=files)

    @app.post("/uses-request-files")
    def uses_request_files() -> Any:
        return jsonify(sorted(request.files))

    @app.errorhandler(UploadError)
    def refused(error: UploadError) -> Any:
        return jsonify(error=error.message), error.status

    return app


def test_flask_route_streams_files_into_the_vault(upload_app: Flask, vault: Vault) -> None:
    big = random.Random(11).randbytes(3 * 1024 * 1024 + 17)  # well past the 500 KB spool size
    small = b"hello from the client\r\n--"

    # Encoded up front: given a dict this large, the test client itself would spool
    # the body to a temporary file (and leak it).
    body = encode(
        [
            ("attachment", (big, "Müller – Straße.pdf")),
            ("subject", "Two files"),
            ("unused", (b"", "")),
            ("attachment", (small, "s.txt")),
        ]
    )
    response = upload_app.test_client().post("/upload", data=body, content_type=MULTIPART)

    assert response.status_code == 200, response.get_data(as_text=True)
    result = response.get_json()
    assert result["fields"] == {"subject": "Two files"}
    assert [(f["filename"], f["size"], f["sha256"]) for f in result["files"]] == [
        ("Müller – Straße.pdf", len(big), hashlib.sha256(big).hexdigest()),
        ("s.txt", len(small), hashlib.sha256(small).hexdigest()),
    ]
    stored = b"".join(vault.iter_plaintext(result["files"][0]["blob_id"]))
    assert stored == big


def test_flask_route_with_the_test_clients_own_form_encoding(upload_app: Flask) -> None:
    response = upload_app.test_client().post(
        "/upload",
        data={
            "subject": "From a dict",
            "attachment": [(io.BytesIO(b"one"), "1.txt"), (io.BytesIO(b"two"), "2.txt")],
            "unused": (io.BytesIO(b""), ""),
        },
    )

    assert response.status_code == 200, response.get_data(as_text=True)
    result = response.get_json()
    assert result["fields"] == {"subject": "From a dict"}
    assert [(f["field"], f["filename"], f["sha256"]) for f in result["files"]] == [
        ("attachment", "1.txt", hashlib.sha256(b"one").hexdigest()),
        ("attachment", "2.txt", hashlib.sha256(b"two").hexdigest()),
    ]


def test_the_booby_trap_catches_werkzeugs_own_parser(upload_app: Flask) -> None:
    with pytest.raises(AssertionError, match="spooling form parser"):
        upload_app.test_client().post(
            "/uses-request-files", data={"f": (io.BytesIO(b"x"), "x.txt")}
        )


def test_flask_route_answers_422_when_the_client_disconnects(upload_app: Flask) -> None:
    body, content = cut_body()
    environ = EnvironBuilder(
        method="POST",
        path="/upload",
        input_stream=io.BytesIO(body[: body.index(content) + 1000]),
        content_type=MULTIPART,
    ).get_environ()
    # The client announced the whole body, then went away: request.stream (a
    # LimitedStream) raises ClientDisconnected instead of returning b"". The test
    # client would correct CONTENT_LENGTH, so the WSGI app is called directly.
    environ["CONTENT_LENGTH"] = str(len(body))

    app_iter, status, _ = run_wsgi_app(upload_app.wsgi_app, environ, buffered=True)

    assert status == "422 UNPROCESSABLE ENTITY"
    assert json.loads(b"".join(app_iter)) == {
        "error": "The upload ended before the file “report.pdf” was complete; the "
        "connection was probably interrupted. Please try again."
    }


def test_flask_route_answers_422_for_a_non_multipart_body(upload_app: Flask) -> None:
    response = upload_app.test_client().post("/upload", json={"file": "nope"})

    assert response.status_code == 422
    assert response.get_json() == {
        "error": "Uploads must be sent as multipart/form-data, not “application/json”."
    }
