"""OS::Heat::WaitConditionHandle and OS::Heat::WaitCondition, as Heat defines them: the
handle takes token signals {status, reason, data, id}; the condition completes after
`count` SUCCESS signals, fails at once on a FAILURE, and times out with "N of M received".
"""

import json
import secrets
import time
from collections.abc import Mapping
from typing import Any

from cellar.orchestration.local.cloud_base import (
    OWNER,
    SUCCESS,
    CloudResource,
    SignalRefused,
    WaitConditionFailure,
    WaitConditionTimeout,
    signal_body,
)
from cellar.orchestration.local.resources import (
    Prop,
    ResourceFailure,
)

# Wait conditions ---------------------------------------------------------------------------


def token_matches(handle_data: Mapping[str, Any], token: object) -> bool:
    """Whether `token` is the one a handle made (`handle_data`: its resource data), in
    constant time: the API checks an agent's signal with it too."""
    expected = handle_data.get("token")
    return (
        isinstance(token, str)
        and isinstance(expected, str)
        and secrets.compare_digest(token, expected)
    )


class WaitConditionHandle(CloudResource):
    """OS::Heat::WaitConditionHandle (TOKEN_SIGNAL): `endpoint` and `token` to POST a
    signal `{status, reason, data, id}` to; the token travels as `token` in the details."""

    type_name = "OS::Heat::WaitConditionHandle"
    properties_schema = {"signal_transport": Prop("string", default="TOKEN_SIGNAL")}
    attributes_schema = frozenset({"endpoint", "token", "curl_cli", "signal"})

    def handle_create(self) -> Any:
        self.data["token"] = secrets.token_hex(16)
        self.data["endpoint"] = self.cloud.signal_url(self.stack_id, self.name)
        return None

    def handle_signal(self, details: Mapping[str, Any]) -> Any:
        owner = details.get(OWNER) is True  # the stack's owner, through the service
        if not owner and not token_matches(self.data, details.get("token")):
            raise SignalRefused("Signal refused: invalid token")
        body = signal_body({k: v for k, v in details.items() if k not in ("token", OWNER)})
        self.cloud.signals.add(self.physical_id, body)
        return None

    def handle_delete(self) -> Any:
        self.cloud.signals.drop(self.physical_id)
        return None

    def get_attribute(self, attribute: str) -> Any:
        endpoint, token = self.data.get("endpoint"), self.data.get("token")
        if attribute == "endpoint":
            return endpoint
        if attribute == "token":
            return token
        if attribute == "curl_cli":
            return (
                f"curl -i -X POST -H 'X-Auth-Token: {token}' "
                "-H 'Content-Type: application/json' -H 'Accept: application/json' "
                f"{endpoint}"
            )
        if attribute == "signal":
            return json.dumps({"url": endpoint, "token": token})
        return None


class WaitCondition(CloudResource):
    type_name = "OS::Heat::WaitCondition"
    properties_schema = {
        "handle": Prop("string", required=True),
        "timeout": Prop("number", required=True),
        "count": Prop("integer", default=1, update_allowed=True),
    }
    attributes_schema = frozenset({"data"})

    def _start(self) -> float:
        timeout = float(self.properties["timeout"])
        if not 1 <= timeout <= 43200:
            raise ResourceFailure(f"timeout {timeout:g} is not in [1, 43200]")
        return time.monotonic() + timeout

    def _check(self, deadline: float) -> bool:
        signals = self.cloud.signals.get(str(self.properties["handle"]))
        failures = [s["reason"] for s in signals if s["status"] != SUCCESS]
        if failures:
            raise WaitConditionFailure(";".join(failures))
        count = int(self.properties.get("count") or 1)
        if len(signals) >= count:
            return True
        if time.monotonic() < deadline:
            return False
        message = f"{len(signals)} of {count} received"
        reasons = ";".join(s["reason"] for s in signals)
        raise WaitConditionTimeout(f"{message} - {reasons}" if reasons else message)

    def handle_create(self) -> Any:
        return self._start()

    def check_create_complete(self, handle: Any) -> bool:
        return self._check(float(handle))

    def handle_update(self, new_properties: Mapping[str, Any], changed: set[str]) -> Any:
        self.properties = dict(new_properties)
        return self._start()

    def check_update_complete(self, handle: Any) -> bool:
        return self._check(float(handle))

    def get_attribute(self, attribute: str) -> Any:
        if attribute != "data":
            return None
        signals = self.cloud.signals.get(str(self.properties.get("handle") or ""))
        return json.dumps({str(i + 1): s["data"] for i, s in enumerate(signals)})
