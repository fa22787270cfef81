"""
The API key goes only to the configured Blink: no client follows a redirect anywhere.

A Blink URL answering 301/302/303/307/308 (a hijacked name, a redirecting proxy) names another host,
another port, or — from HTTPS — plain HTTP. Every call, sync and async, fails at once with a
permanent error naming the status and the target's origin, and the other server never sees the key
(nor the execute body with the playbook's inputs).
"""

from __future__ import annotations

import pytest

from airflow_provider_blink.exceptions import BlinkPermanentError

from support.emulator import API_KEY
from support.hostile import CALLS, OTHER_HOST, HostileServer, blink_answers, call_blink, redirect

STATUSES = [301, 302, 303, 307, 308]
#: target -> (host of the other server, whether the configured Blink speaks HTTPS)
TARGETS = {
    "other-host": (OTHER_HOST, False),
    "other-port": ("127.0.0.1", False),
    "https-to-http": ("127.0.0.1", True),
}


@pytest.mark.parametrize("client", ["sync", "async"])
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("call", [name for name in CALLS if name != "steps"])
def test_a_redirect_is_refused_and_the_key_stays_home(use_blink, certificate, client, target, status, call):
    other_host, https = TARGETS[target]
    with HostileServer(blink_answers, host=other_host) as elsewhere:
        answer = redirect(status, f"{elsewhere.url}/api/v1/workspace/ws/executions/exec-1?from=redirect")
        tls = certificate.server_context() if https else None
        with HostileServer(answer, tls=tls) as blink:
            use_blink(blink.url, verify=str(certificate.cert), retry_limit=2)

            with pytest.raises(BlinkPermanentError) as info:
                call_blink(client, call)

    assert elsewhere.requests_carrying(API_KEY) == []
    assert elsewhere.requests == [], "nothing at all goes to the redirect's target"
    assert len(blink.requests) == 1, "a redirect is permanent: not retried"
    message = str(info.value)
    assert f"HTTP {status}" in message
    assert elsewhere.url in message
    assert "from=redirect" not in message, "only the target's origin is named"
    assert API_KEY not in message
