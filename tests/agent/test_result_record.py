"""Result records verify only against the key of the device that signed them."""

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.device_identity import DeviceIdentity
from agent.errors import SignatureError, WireFormatError
from agent.wire.result import Outcome, ResultRecord, SignedResult


def record(**changes):
    fields = dict(
        record_id="0b6f1e7c-5a1b-4d7e-9d55-0123456789ab",
        device_id="dev-0123456789abcdef0123",
        release="releases/demo/1.0/demo.tar",
        name="demo",
        version="1.0",
        outcome=Outcome.INSTALLED,
        started_at="2026-11-25T00:00:00+00:00",
        finished_at="2026-11-25T00:01:00+00:00",
    )
    fields.update(changes)
    return ResultRecord(**fields)


def public(key):
    return DeviceIdentity(key).public_key_raw


def test_signed_record_round_trips_and_verifies():
    key = Ed25519PrivateKey.generate()
    signed = SignedResult.sign(record(), key)
    again = SignedResult.from_bytes(signed.to_bytes(), "test")
    again.verify(public(key))
    assert again.record == signed.record


def test_record_signed_by_another_key_is_refused():
    signed = SignedResult.sign(record(), Ed25519PrivateKey.generate())
    with pytest.raises(SignatureError, match="does not verify"):
        signed.verify(public(Ed25519PrivateKey.generate()))


def test_altered_record_is_refused():
    key = Ed25519PrivateKey.generate()
    signed = SignedResult.sign(record(), key)
    forged = SignedResult(record=record(outcome=Outcome.REVERTED), signature=signed.signature)
    with pytest.raises(SignatureError):
        forged.verify(public(key))


def test_garbage_signature_is_refused_not_crashing():
    key = Ed25519PrivateKey.generate()
    forged = SignedResult(record=record(), signature="not base64 at all!")
    with pytest.raises(SignatureError):
        forged.verify(public(key))


def test_oversized_or_malformed_record_is_refused():
    with pytest.raises(WireFormatError, match="larger than"):
        SignedResult.from_bytes(b"{" + b" " * 70000 + b"}", "peer")
    with pytest.raises(WireFormatError, match="not JSON"):
        SignedResult.from_bytes(b"\xff\xfe", "peer")
    with pytest.raises(WireFormatError, match="record.outcome"):
        SignedResult.from_bytes(
            b'{"record": {"outcome": "exploded"}, "signature": ""}', "peer"
        )


def test_a_record_signed_before_health_signals_existed_still_verifies():
    # What an older agent signed: its canonical record has no "signals" key at all.
    import json

    from agent.wire.canonical import canonical_json
    from agent.wire.device_signature import sign_detached

    key = Ed25519PrivateKey.generate()
    old_form = record().model_dump(mode="json")
    del old_form["signals"]
    body = canonical_json({"record": old_form,
                           "signature": sign_detached(key, canonical_json(old_form))})
    parsed = SignedResult.from_bytes(body, "old agent")
    parsed.verify(public(key))
    assert parsed.record.signals is None and parsed.to_bytes() == body
    assert "signals" not in json.loads(body)["record"]


def test_health_signals_are_covered_by_the_signature():
    from agent.wire.health_signals import HealthSignals, SignalWindow

    def window(crashes):
        return SignalWindow(started_at="2026-11-25T00:00:00+00:00", seconds=600.0,
                            crashes=crashes, restarts=0, rss_bytes=50_000_000)

    key = Ed25519PrivateKey.generate()
    signed = SignedResult.sign(
        record(signals=HealthSignals(before=window(1), after=window(2))), key)
    again = SignedResult.from_bytes(signed.to_bytes(), "test")
    again.verify(public(key))
    assert again.record.signals is not None and again.record.signals.after.crashes == 2
    forged = signed.to_bytes().replace(b'"crashes":2', b'"crashes":1')
    with pytest.raises(SignatureError):
        SignedResult.from_bytes(forged, "forged").verify(public(key))
