"""X-Hub-Signature-256: HMAC-SHA256 of the raw body; checked in constant time."""
import pytest

from hashtale.webhook.signature import HEADER, SignatureError, check, sign

# RFC 4231-style known answer: HMAC-SHA256(key="key", "The quick brown fox jumps over the lazy dog").
KNOWN_KEY = "key"
KNOWN_BODY = b"The quick brown fox jumps over the lazy dog"
KNOWN_DIGEST = "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"


def test_sign_matches_the_known_hmac_sha256():
    assert sign(KNOWN_KEY, KNOWN_BODY) == "sha256=" + KNOWN_DIGEST


def test_the_right_signature_passes_even_in_upper_case():
    check(KNOWN_KEY, KNOWN_BODY, "sha256=" + KNOWN_DIGEST)
    check(KNOWN_KEY, KNOWN_BODY, "sha256=" + KNOWN_DIGEST.upper())


@pytest.mark.parametrize("header, reason", [
    (None, "missing"),
    ("", "missing"),
    ("sha256=" + "0" * 64, "does not match"),
    (KNOWN_DIGEST, "does not match"),  # no "sha256=" prefix
    ("sha1=" + KNOWN_DIGEST[:40], "does not match"),
    ("sha256=" + KNOWN_DIGEST + "00", "does not match"),
    ("sha256=\u00e9" + KNOWN_DIGEST[1:], "does not match"),  # a non-ASCII header fails the check, not the server
])
def test_wrong_or_missing_signatures_are_refused(header, reason):
    with pytest.raises(SignatureError, match=reason):
        check(KNOWN_KEY, KNOWN_BODY, header)


def test_the_signature_covers_every_byte_and_the_secret():
    header = sign("s3cret", b'{"a": 1}')
    check("s3cret", b'{"a": 1}', header)
    with pytest.raises(SignatureError):
        check("s3cret", b'{"a": 1} ', header)
    with pytest.raises(SignatureError):
        check("other", b'{"a": 1}', header)


def test_header_name_is_metas():
    assert HEADER == "X-Hub-Signature-256"
