"""`[server] tls_cert / tls_key`: `meisitong-hub serve` speaks HTTPS itself, the console's
cookie is then Secure, and a missing, unreadable or mismatched file is one clear error
naming the setting before anything starts."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import subprocess

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hub.config import HubConfig
from hub.errors import HubConfigError
from tests.hub.test_console_login import PASSWORD, add_admin
from tests.processes import BIN_HUB, Fleet, free_port


def self_signed(directory, name: str = "hub"):
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "meisitong test hub")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def test_the_hub_serves_https_itself_and_the_console_cookie_is_secure(tmp_path):
    cert, key = self_signed(tmp_path)
    port = free_port("127.0.0.1")
    fleet = Fleet(tmp_path, tmp_path / "hub", f"http://127.0.0.1:{port}")
    try:
        fleet.serve_new_hub({"tls_cert": str(cert), "tls_key": str(key)})
        add_admin(fleet, "alice", "admin")
        trust = ssl.create_default_context(cafile=str(cert))
        url = f"https://127.0.0.1:{port}"
        with httpx.Client(base_url=url, verify=trust, timeout=30,
                          headers={"origin": url}) as browser:
            assert browser.get("/api/v1/health").json() == {"ok": True}
            answer = browser.post("/console/login",
                                  data={"name": "alice", "password": PASSWORD})
            assert answer.status_code == 303
            cookie = answer.headers["set-cookie"]
            assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
            assert "max-age" in answer.headers["strict-transport-security"]
            assert browser.get("/console/api/session").json()["name"] == "alice"
        with pytest.raises(httpx.HTTPError):  # no plain HTTP beside it
            httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=5)
    finally:
        fleet.stop_all()


def tls_config(tmp_path, cert, key) -> HubConfig:
    path = tmp_path / "hub.toml"
    path.write_text(f'[server]\ntls_cert = "{cert}"\ntls_key = "{key}"\n')
    return HubConfig.load(path)


def test_tls_files_missing_unreadable_or_mismatched_are_named_in_the_error(tmp_path):
    cert, key = self_signed(tmp_path)
    _, other_key = self_signed(tmp_path, "other")
    with pytest.raises(HubConfigError, match=r"\[server\] tls_cert in hub.toml: .*absent.crt"):
        tls_config(tmp_path, tmp_path / "absent.crt", key).server.tls_files()
    with pytest.raises(HubConfigError, match=r"\[server\] tls_cert / tls_key .* not a PEM"):
        tls_config(tmp_path, cert, other_key).server.tls_files()
    with pytest.raises(HubConfigError, match=r"not a PEM"):
        tls_config(tmp_path, key, cert).server.tls_files()
    if os.geteuid() != 0:  # root reads any file
        key.chmod(0)
        with pytest.raises(HubConfigError, match=r"tls_key in hub.toml: .*cannot read"):
            tls_config(tmp_path, cert, key).server.tls_files()
        key.chmod(0o600)
    (tmp_path / "hub.toml").write_text(f'[server]\ntls_cert = "{cert}"\n')
    with pytest.raises(HubConfigError, match="tls_cert and tls_key together"):
        HubConfig.load(tmp_path / "hub.toml")
    (tmp_path / "hub.toml").write_text('[server]\ntrusted_proxies = ["10.0.0.300"]\n')
    with pytest.raises(HubConfigError, match="not an IP address or network"):
        HubConfig.load(tmp_path / "hub.toml")
    relative = tls_config(tmp_path, "tls/hub.crt", "tls/hub.key")
    assert relative.server.tls_cert == tmp_path / "tls/hub.crt"
    assert relative.public_url.startswith("https://")


def test_serve_refuses_to_start_on_a_missing_certificate_with_one_clear_line(tmp_path):
    fleet = Fleet(tmp_path, tmp_path / "hub", f"http://127.0.0.1:{free_port('127.0.0.1')}")
    fleet.command(BIN_HUB, "init", "--listen", fleet.hub_url.removeprefix("http://"),
                  "--seed-listen", f"127.0.0.1:{free_port('127.0.0.1')}")
    config = fleet.hub_dir / "hub.toml"
    config.write_text(config.read_text().replace(
        "[server]\n", '[server]\ntls_cert = "tls/hub.crt"\ntls_key = "tls/hub.key"\n', 1))
    done = subprocess.run([BIN_HUB, "serve", "--dir", str(fleet.hub_dir)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"error: [server] tls_cert in hub.toml: {fleet.hub_dir / 'tls/hub.crt'}: cannot "
        "read: No such file or directory")
