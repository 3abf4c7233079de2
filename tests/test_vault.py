"""The vault: TOTP codes, encryption at rest per tenant, and a write-only secrets API."""

from __future__ import annotations

import base64

import pytest

from vault.crypto import InvalidToken, open_json, open_text, seal_json, seal_text
from vault.models import SecretVersion
from vault.services import secret_resolve
from vault.totp import decode_seed, totp, verify

# -- TOTP -------------------------------------------------------------------------------------------
RFC_SEED = b"12345678901234567890"  # RFC 6238 appendix B, SHA-1
RFC_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]


@pytest.mark.parametrize(("at", "code"), RFC_VECTORS)
@pytest.mark.parametrize(
    "encode",
    [
        lambda key: base64.b32encode(key).decode(),
        lambda key: base64.b32encode(key).decode().lower().rstrip("="),
        lambda key: key.hex(),
        lambda key: key.hex().upper(),
    ],
)
def test_totp_matches_the_rfc_6238_test_vectors(encode, at, code):
    seed = encode(RFC_SEED)

    assert totp(seed, at=at, digits=8) == code
    assert totp(seed, at=at) == code[-6:]


def test_a_code_is_valid_for_its_period_and_the_neighbouring_ones_only():
    seed = base64.b32encode(RFC_SEED).decode()
    code = totp(seed, at=59)

    assert verify(seed, code, at=59)
    assert verify(seed, code, at=59 + 30)
    assert not verify(seed, code, at=59 + 90)
    assert not verify(seed, "000000", at=59)


@pytest.mark.parametrize(
    "seed",
    [
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
        "gezd gnbv gy3t qojq gezd gnbv gy3t qojq",
        "GEZDGNBV-GY3TQOJQ-GEZDGNBV-GY3TQOJQ",
        "3132333435363738393031323334353637383930",
    ],
)
def test_decode_seed_accepts_base32_with_spaces_or_dashes_and_hex(seed):
    assert decode_seed(seed) == RFC_SEED


@pytest.mark.parametrize(
    "seed",
    ["", "   ", "not a seed!", "GEZDGNBVGY3TQOJ1", "0x3132", "313", "ÄÖÜ", "hello", "zz", "password", "3132"],
)
def test_decode_seed_rejects_junk_and_seeds_too_short_to_be_real(seed):
    with pytest.raises(ValueError):
        decode_seed(seed)


# -- encryption at rest -----------------------------------------------------------------------------
def test_sealed_text_opens_to_the_original_and_does_not_show_it(db):
    token = seal_text("correct horse battery staple", scope="tenant:1:secrets")

    assert "correct horse" not in token
    assert open_text(token, scope="tenant:1:secrets") == "correct horse battery staple"
    assert seal_text("correct horse battery staple", scope="tenant:1:secrets") != token


def test_sealed_json_round_trips(db):
    value = {"cookies": [{"name": "sid", "value": "abc"}], "url": "https://shop.example/"}

    assert open_json(seal_json(value, scope="tenant:1:checkpoint"), scope="tenant:1:checkpoint") == value


@pytest.mark.parametrize("other_scope", ["tenant:2:secrets", "tenant:1:answers", "tenant:11:secrets"])
def test_a_token_sealed_for_one_scope_does_not_open_in_another(db, other_scope):
    token = seal_text("hunter2", scope="tenant:1:secrets")

    with pytest.raises(InvalidToken):
        open_text(token, scope=other_scope)


def test_a_tampered_token_does_not_open(db):
    token = seal_text("hunter2", scope="tenant:1:secrets")
    tampered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]

    with pytest.raises(InvalidToken):
        open_text(tampered, scope="tenant:1:secrets")


# -- the secrets API ----------------------------------------------------------------------------------
PASSWORD = "s3cr3t-Hunter2-value"


def test_posting_a_secret_creates_version_1_and_posting_the_name_again_adds_version_2(alice):
    first = alice.post("/api/secrets", {"name": "shop_password", "value": PASSWORD})
    second = alice.post(
        "/api/secrets",
        {"name": "shop_password", "value": PASSWORD + "-rotated", "origins": ["https://shop.example/login"]},
    )

    assert first.status_code == 201, first.content
    assert {k: first.json()[k] for k in ("name", "kind", "version", "origins")} == {
        "name": "shop_password",
        "kind": "password",
        "version": 1,
        "origins": [],
    }
    assert second.status_code == 201
    assert second.json()["version"] == 2
    assert second.json()["origins"] == ["https://shop.example"]
    resolved = secret_resolve(tenant_id=alice.tenant.pk, name="shop_password")
    assert resolved is not None
    assert resolved.value == PASSWORD + "-rotated"


def test_listing_secrets_shows_only_the_newest_version_of_each_without_values(alice):
    alice.post("/api/secrets", {"name": "shop_password", "value": PASSWORD})
    alice.post("/api/secrets", {"name": "shop_password", "value": PASSWORD + "2"})
    alice.post("/api/secrets", {"name": "api_key", "value": "key-12345", "kind": "text"})

    response = alice.get("/api/secrets")

    assert response.status_code == 200
    listed = {s["name"]: s for s in response.json()}
    assert set(listed) == {"shop_password", "api_key"}
    assert listed["shop_password"]["version"] == 2
    assert listed["api_key"]["kind"] == "text"
    assert all("value" not in s and "ciphertext" not in s for s in listed.values())


def test_a_secret_value_never_appears_in_any_answer(alice, bob):
    seed = base64.b32encode(RFC_SEED).decode()
    responses = [
        alice.post("/api/secrets", {"name": "shop_password", "value": PASSWORD}),
        alice.post("/api/secrets", {"name": "shop_password", "value": PASSWORD}),
        alice.post("/api/secrets", {"name": "shop_otp", "value": seed, "kind": "totp"}),
        alice.post("/api/secrets", {"name": "bad name", "value": PASSWORD}),
        alice.post("/api/secrets", {"name": "other", "value": PASSWORD, "kind": "bogus"}),
        alice.post("/api/secrets", {"name": "other", "value": PASSWORD, "origins": ["ftp://x"]}),
        alice.post("/api/secrets", {"name": "other", "value": PASSWORD * 1000}),
        bob.post("/api/secrets", {"name": "other", "value": PASSWORD}),
        alice.get("/api/secrets"),
        bob.get("/api/secrets"),
        alice.client.delete("/api/secrets/shop_password"),
    ]

    assert [r.status_code for r in responses] == [201, 201, 201, 400, 400, 400, 400, 403, 200, 200, 204]
    for response in responses:
        assert PASSWORD.encode() not in response.content
        assert seed.encode() not in response.content


def test_the_stored_ciphertext_does_not_contain_the_value(alice):
    alice.post("/api/secrets", {"name": "shop_password", "value": PASSWORD})

    stored = SecretVersion.objects.get(tenant=alice.tenant, name="shop_password")
    assert PASSWORD not in stored.ciphertext
    assert base64.b64encode(PASSWORD.encode()).decode() not in stored.ciphertext


def test_deleting_a_secret_removes_every_version_and_a_second_delete_is_a_404(alice):
    alice.post("/api/secrets", {"name": "shop_password", "value": PASSWORD})
    alice.post("/api/secrets", {"name": "shop_password", "value": PASSWORD})

    first = alice.client.delete("/api/secrets/shop_password")
    second = alice.client.delete("/api/secrets/shop_password")

    assert first.status_code == 204
    assert first.content == b""
    assert second.status_code == 404
    assert second.json()["error"] == "not_found"
    assert alice.get("/api/secrets").json() == []
    assert not SecretVersion.objects.filter(tenant=alice.tenant).exists()


def test_after_a_delete_the_name_starts_again_at_version_1(alice):
    alice.post("/api/secrets", {"name": "shop_password", "value": PASSWORD})
    alice.client.delete("/api/secrets/shop_password")

    again = alice.post("/api/secrets", {"name": "shop_password", "value": PASSWORD})

    assert again.json()["version"] == 1


@pytest.mark.parametrize("seed", ["not a seed!", "0x1234", "ÄÖÜ", "hello"])
def test_a_totp_secret_with_a_bad_seed_is_a_400_and_nothing_is_stored(alice, seed):
    response = alice.post("/api/secrets", {"name": "shop_otp", "value": seed, "kind": "totp"})

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_secret"
    assert "base32 or hex" in response.json()["detail"]
    assert not SecretVersion.objects.exists()


def test_a_totp_secret_yields_the_current_code(alice):
    seed = base64.b32encode(RFC_SEED).decode()
    alice.post("/api/secrets", {"name": "shop_otp", "value": seed, "kind": "totp"})

    resolved = secret_resolve(tenant_id=alice.tenant.pk, name="shop_otp", at=59)

    assert resolved is not None
    assert resolved.value == "287082"


@pytest.mark.parametrize(
    "origins", [["ftp://shop.example"], ["shop.example"], ["https://"], "https://shop.example", [42]]
)
def test_bad_origins_are_a_400_and_nothing_is_stored(alice, origins):
    response = alice.post("/api/secrets", {"name": "shop_password", "value": PASSWORD, "origins": origins})

    assert response.status_code == 400, response.content
    assert response.json()["error"] in {"invalid", "invalid_secret"}
    assert not SecretVersion.objects.exists()


def test_origins_are_normalised_to_scheme_host_and_port(alice):
    origins = ["https://Shop.Example/login?next=/", "http://127.0.0.1:8000/x", "https://shop.example:443"]

    response = alice.post("/api/secrets", {"name": "shop_password", "value": PASSWORD, "origins": origins})

    assert response.json()["origins"] == ["http://127.0.0.1:8000", "https://shop.example"]


@pytest.mark.parametrize("name", ["bad name", "1password", "pass-word", "", "a" * 101])
def test_a_bad_secret_name_is_a_400(alice, name):
    response = alice.post("/api/secrets", {"name": name, "value": PASSWORD})

    assert response.status_code == 400
    assert not SecretVersion.objects.exists()


def test_a_viewer_cannot_write_or_delete_secrets(alice, bob):
    alice.post("/api/secrets", {"name": "shop_password", "value": PASSWORD})

    assert bob.post("/api/secrets", {"name": "x", "value": PASSWORD}).status_code == 403
    assert bob.client.delete("/api/secrets/shop_password").status_code == 403
    assert SecretVersion.objects.filter(name="shop_password").count() == 1


def test_another_tenants_secrets_are_neither_listed_nor_deletable(alice, carol):
    alice.post("/api/secrets", {"name": "shop_password", "value": PASSWORD})
    carol.post("/api/secrets", {"name": "shop_password", "value": "carols"})

    assert [s["version"] for s in carol.get("/api/secrets").json()] == [1]
    assert carol.client.delete("/api/secrets/shop_password").status_code == 204
    assert carol.client.delete("/api/secrets/shop_password").status_code == 404
    resolved = secret_resolve(tenant_id=alice.tenant.pk, name="shop_password")
    assert resolved is not None
    assert resolved.value == PASSWORD
