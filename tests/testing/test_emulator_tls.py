"""The emulator serves HTTPS with a given certificate; clients that trust its CA talk to it as usual."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from airflow_provider_blink.testing import BlinkEmulator, ScriptedPlaybook
from airflow_provider_blink.testing.cli import build_parser, emulator_from_args, server_ssl_context

KEY = "tls-test-key-31c9"
WS = "ws-tls"
PLAYBOOK = ScriptedPlaybook(id="pb", name="pb", workspace_id=WS, duration=0.0, output={"ok": True})


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA and a server certificate for 127.0.0.1 signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, signer, ca: bool):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            san = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_cert = certificate("test CA", ca_key, "test CA", ca_key, ca=True)
    server_cert = certificate("127.0.0.1", server_key, "test CA", ca_key, ca=False)
    folder = tmp_path_factory.mktemp("pki")
    pki = Pki(folder / "ca.pem", folder / "server.pem", folder / "server-key.pem")
    pki.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki.cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    pki.key.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return pki


@pytest.fixture
def https_emulator(pki: Pki):
    with BlinkEmulator(
        api_key=KEY, workspaces=[WS], playbooks=[PLAYBOOK], ssl_context=server_ssl_context(pki.cert, pki.key)
    ) as emulator:
        yield emulator


def start_run(emulator: BlinkEmulator, verify: str | bool) -> requests.Response:
    return requests.post(
        f"{emulator.url}/api/v1/workspace/{WS}/playbooks/pb/execute",
        headers={"BLINK-API-KEY": KEY},
        verify=verify,
        timeout=10,
    )


def test_url_is_https(https_emulator):
    assert https_emulator.url == f"https://127.0.0.1:{https_emulator.port}"
    assert json.loads(https_emulator.connection_json())["host"].startswith("https://")


def test_a_client_trusting_the_ca_gets_answers(https_emulator, pki):
    response = start_run(https_emulator, verify=str(pki.ca))

    assert response.status_code == 200
    assert https_emulator.executions[0]["id"] == response.json()["execution_id"]


def test_a_client_without_the_ca_is_refused(https_emulator, pki):
    session = requests.Session()
    session.trust_env = False  # a REQUESTS_CA_BUNDLE in the environment must not decide the test

    with pytest.raises(requests.exceptions.SSLError):
        session.get(f"{https_emulator.url}/api/v1/workspace/{WS}/executions", verify=True, timeout=10)


def test_plain_http_is_not_served(https_emulator):
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{https_emulator.port}/api/v1/workspace/{WS}/executions", timeout=10)


def test_the_hook_reads_executions_over_tls(https_emulator, pki, monkeypatch):
    from airflow_provider_blink.hooks.blink import BlinkHook

    conn = json.loads(https_emulator.connection_json(workspace_id=WS))
    conn["extra"]["verify"] = str(pki.ca)
    monkeypatch.setenv("AIRFLOW_CONN_BLINK_DEFAULT", json.dumps(conn))
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # requests prefers them to a session's verify
        monkeypatch.delenv(name, raising=False)
    execution_id = start_run(https_emulator, verify=str(pki.ca)).json()["execution_id"]
    hook = BlinkHook()

    async def read_async() -> dict:
        async with hook.async_client() as client:
            return await client.get_execution(execution_id)

    assert hook.get_execution(execution_id)["id"] == execution_id
    assert asyncio.run(read_async())["id"] == execution_id


def test_cli_tls_flags_serve_https(pki):
    args = build_parser().parse_args(
        ["--port", "0", "--api-key", KEY, "--tls-cert", str(pki.cert), "--tls-key", str(pki.key)]
    )

    with emulator_from_args(args) as emulator:
        response = requests.get(
            f"{emulator.url}/api/v1/workspace/demo-workspace/executions",
            headers={"BLINK-API-KEY": KEY},
            verify=str(pki.ca),
            timeout=10,
        )

    assert response.status_code == 200


@pytest.mark.parametrize("flag", ["--tls-cert", "--tls-key"], ids=["cert-only", "key-only"])
def test_cli_needs_both_tls_flags(pki, flag):
    args = build_parser().parse_args([flag, str(pki.cert)])

    with pytest.raises(ValueError, match="give both or neither"):
        emulator_from_args(args)


def test_cli_rejects_a_key_that_does_not_match(pki):
    with pytest.raises(ssl.SSLError):
        server_ssl_context(pki.cert, pki.ca)


def test_no_tls_flags_serve_plain_http():
    assert server_ssl_context(None, None) is None
