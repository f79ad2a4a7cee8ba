"""A fake Entra ID that a child process reaches as https://login.microsoftonline.com.

msal accepts only https authorities, and for a host it does not know it first asks
login.microsoftonline.com for instance discovery, so a child process (`python app.py doctor`)
cannot be pointed at an http:// fake. Instead the child keeps the real authority and gets the
standard proxy variables: `HTTPS_PROXY` names this proxy on 127.0.0.1 and `REQUESTS_CA_BUNDLE` a
test CA (requests, which msal uses, honours both). The proxy accepts `CONNECT` to the fake's host
only, ends TLS with a certificate that CA issued for that host, and hands each request to a
`FakeEntra` in this process. Any other `CONNECT` is refused and recorded in `refused`, so nothing
leaves the machine.

FakeEntra mints opaque app tokens; here client-credentials answers carry JWT-shaped ones (not
signed) instead, with the `roles` a test grants, as Entra ID issues them. `on_app_token(token,
resource)` tells the test each one, so a fake service can accept it.
"""

from __future__ import annotations

import json
import secrets
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.fake_entra import FakeEntra, FakeResponse, unsigned_jwt

AppTokenListener = Callable[[str, str], None]


@dataclass(frozen=True)
class Certificates:
    ca_file: Path
    cert_file: Path
    key_file: Path


def make_certificates(directory: Path, host: str) -> Certificates:
    """A test CA and a server certificate it issued for `host`, as PEM files in `directory`."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Frontdesk test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = Certificates(
        ca_file=directory / "test-ca.pem",
        cert_file=directory / "entra-cert.pem",
        key_file=directory / "entra-key.pem",
    )
    files.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


class EntraProxy:
    """The HTTPS proxy in front of a FakeEntra; a context manager that serves from a thread."""

    def __init__(
        self,
        entra: FakeEntra,
        directory: Path,
        *,
        app_roles: Sequence[str] = (),
        on_app_token: AppTokenListener | None = None,
    ) -> None:
        self.entra = entra
        self.app_roles = list(app_roles)
        """Application permissions every app token carries in `roles` (none: no claim)."""
        self.on_app_token = on_app_token
        self.refused: list[str] = []
        """CONNECT targets (or other request lines) the proxy refused."""
        self.certificates = make_certificates(directory, entra.host)
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.load_cert_chain(self.certificates.cert_file, self.certificates.key_file)
        self._server = _ProxyServer(("127.0.0.1", 0), _Tunnel, self)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    @property
    def env(self) -> dict[str, str]:
        """The variables that send a child's requests-based HTTPS through this proxy."""
        host, port = self._server.server_address[:2]
        return {
            "HTTPS_PROXY": f"http://{host}:{port}",
            "NO_PROXY": "127.0.0.1,localhost",
            "REQUESTS_CA_BUNDLE": str(self.certificates.ca_file),
        }

    def answer(self, method: str, path: str, body: str, headers: dict[str, str]) -> FakeResponse:
        """FakeEntra's answer, with a JWT-shaped app token for client credentials."""
        url = f"https://{self.entra.host}{path}"
        if method == "GET":
            return self.entra.get(url, headers=headers)
        response = self.entra.post(url, data=body, headers=headers)
        form = dict(parse_qsl(body))
        if form.get("grant_type") != "client_credentials" or response.status_code != 200:
            return response
        answer = json.loads(response.text)
        resource = form.get("scope", "").removesuffix("/.default")
        answer["access_token"] = self._app_token(resource)
        if self.on_app_token is not None:
            self.on_app_token(answer["access_token"], resource)
        return FakeResponse(response.status_code, json.dumps(answer), dict(response.headers))

    def _app_token(self, resource: str) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": resource,
            "iss": f"https://sts.windows.net/{self.entra.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + self.entra.token_lifetime,
            "appid": self.entra.client_id,
            "idtyp": "app",
            "tid": self.entra.tenant_id,
            "uti": secrets.token_urlsafe(12),
        }
        if self.app_roles:
            claims["roles"] = list(self.app_roles)
        return unsigned_jwt(claims, {"alg": "RS256", "typ": "JWT", "kid": "frontdesk-test"})


class _ProxyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[_Tunnel], proxy: EntraProxy) -> None:
        self.proxy = proxy
        super().__init__(address, handler)


class _Tunnel(socketserver.StreamRequestHandler):
    """One client connection: a CONNECT to the fake's host, then HTTP inside TLS."""

    timeout = 15
    server: _ProxyServer

    def handle(self) -> None:
        proxy = self.server.proxy
        request_line = self.rfile.readline(8192).decode("latin-1").strip()
        while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
            pass  # the CONNECT request's headers
        method, _, rest = request_line.partition(" ")
        target = rest.partition(" ")[0]
        if method != "CONNECT" or target != f"{proxy.entra.host}:443":
            proxy.refused.append(request_line)
            self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        with proxy.tls.wrap_socket(self.connection, server_side=True) as tls:
            _EntraHttp(tls, self.client_address, self.server)


class _EntraHttp(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive inside the tunnel, answered by the proxy's FakeEntra."""

    protocol_version = "HTTP/1.1"
    timeout = 15
    server: _ProxyServer  # type: ignore[assignment]

    def do_GET(self) -> None:  # noqa: N802 - the name BaseHTTPRequestHandler calls
        self._answer("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._answer("POST")

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        response = self.server.proxy.answer(method, self.path, body, dict(self.headers))
        payload = response.text.encode()
        self.send_response(response.status_code)
        for name, value in response.headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read the FakeEntra's own record of requests."""
