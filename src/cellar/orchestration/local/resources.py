"""Resource plugins of the local engine: a small base class and Heat's OS::Heat types.

A type declares its properties (type, required, default, `update_allowed`) and its
attributes; what happens on update follows from that data. Actions are start/poll pairs:
`handle_create()` returns a handle and `check_create_complete(handle)` is polled until it
returns True (or raises, which fails the resource). Neither may block.
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from cellar.orchestration.local.template import TemplateError


class ResourceFailure(Exception):
    """A resource action failed; the message becomes the status reason."""


@dataclass(frozen=True)
class Prop:
    type: str  # string | number | integer | boolean | map | list | any
    required: bool = False
    default: Any = None
    update_allowed: bool = False


_CHECKS: Mapping[str, Any] = {
    "string": str,
    "number": (int, float),
    "integer": int,
    "boolean": bool,
    "map": Mapping,
    "list": list,
}


class Resource:
    """Base of every resource type; an instance is rebuilt from its stored record."""

    type_name: ClassVar[str] = ""
    properties_schema: ClassVar[Mapping[str, Prop]] = {}
    attributes_schema: ClassVar[frozenset[str]] = frozenset()
    any_properties: ClassVar[bool] = False  # OS::Heat::None
    never_update: ClassVar[bool] = False  # OS::Heat::None

    def __init__(
        self, name: str, properties: Mapping[str, Any], physical_id: str, data: dict[str, Any]
    ) -> None:
        self.name = name
        self.properties = dict(properties)
        self.physical_id = physical_id
        self.data = data  # persisted by the engine after every action
        self.stack_id = ""  # set by the engine before any action
        # Set by the engine for the old half of a replacement: a successor of the same
        # name exists, so a lookup by name may find the successor's resource.
        self.replaced = False

    # Signals (Heat's handle_signal): only types that accept signals override these.

    def handle_signal(self, details: Mapping[str, Any]) -> Any:
        raise ResourceFailure(f"resource type {self.type_name} does not handle signals")

    def check_signal_complete(self, handle: Any) -> bool:
        return True

    # Schema ------------------------------------------------------------------------------

    @classmethod
    def check_names(cls, properties: Mapping[str, Any], where: str) -> None:
        """Static check (before functions are resolved): unknown and missing properties."""
        if cls.any_properties:
            return
        for key in properties:
            if key not in cls.properties_schema:
                raise TemplateError(f"{where}.{key}", "unknown property")
        for key, prop in cls.properties_schema.items():
            if prop.required and properties.get(key) is None:
                raise TemplateError(f"{where}.{key}", "property is required")

    @classmethod
    def check_attribute(cls, attribute: str) -> str | None:
        if cls.any_properties or attribute in cls.attributes_schema:
            return None
        return f"resource type {cls.type_name} has no attribute {attribute!r}"

    @classmethod
    def complete(cls, properties: Mapping[str, Any], where: str) -> dict[str, Any]:
        """Resolved properties with defaults filled in and types checked."""
        if cls.any_properties:
            return dict(properties)
        cls.check_names(properties, where)
        result: dict[str, Any] = {}
        for key, prop in cls.properties_schema.items():
            value = properties.get(key)
            if value is None:
                value = prop.default
            if value is not None:
                value = _coerce(prop.type, value, f"{where}.{key}")
            result[key] = value
        return result

    @classmethod
    def needs_replace(
        cls, changed: set[str], new: Mapping[str, Any], old: Mapping[str, Any]
    ) -> bool:
        """True when changing `changed` cannot be done in place."""
        return any(not cls.properties_schema[key].update_allowed for key in changed)

    def needs_replace_failed(self) -> bool:
        """Whether this resource, left FAILED, must be replaced by the next update (Heat's
        `Resource.needs_replace_failed`). A failed action may have left the physical
        resource half made, so by default it is replaced; a plugin that can look at the
        real resource answers False when it is intact, and the update then goes on in place
        (its physical id kept)."""
        return True

    # Actions -----------------------------------------------------------------------------

    def handle_create(self) -> Any:
        return None

    def check_create_complete(self, handle: Any) -> bool:
        return True

    def handle_update(self, new_properties: Mapping[str, Any], changed: set[str]) -> Any:
        self.properties = dict(new_properties)
        return None

    def check_update_complete(self, handle: Any) -> bool:
        return True

    def handle_delete(self) -> Any:
        return None

    def check_delete_complete(self, handle: Any) -> bool:
        return True

    def get_attribute(self, attribute: str) -> Any:
        return None

    def attributes(self) -> dict[str, Any]:
        return {name: self.get_attribute(name) for name in sorted(self.attributes_schema)}


def _coerce(ptype: str, value: Any, where: str) -> Any:
    if ptype == "any":
        return value
    if ptype in ("number", "integer") and isinstance(value, str):
        try:
            return int(value) if ptype == "integer" else float(value)
        except ValueError:
            pass
    if ptype == "boolean" and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if ptype == "string" and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    expected = _CHECKS[ptype]
    if isinstance(value, bool) and ptype in ("number", "integer"):
        raise TemplateError(where, f"value {value!r} is not a {ptype}")
    if not isinstance(value, expected):
        raise TemplateError(where, f"value {value!r} is not a {ptype}")
    return value


class NoneResource(Resource):
    """OS::Heat::None: any properties, every attribute None, never updated or replaced."""

    type_name = "OS::Heat::None"
    any_properties = True
    never_update = True


class Value(Resource):
    """OS::Heat::Value: exposes `value` (always updated in place)."""

    type_name = "OS::Heat::Value"
    properties_schema = {
        "value": Prop("any", required=True, update_allowed=True),
        "type": Prop("string", update_allowed=True),
    }
    attributes_schema = frozenset({"value"})

    @classmethod
    def complete(cls, properties: Mapping[str, Any], where: str) -> dict[str, Any]:
        result = super().complete(properties, where)
        allowed = ("string", "number", "boolean", "json", "comma_delimited_list")
        if result["type"] is not None and result["type"] not in allowed:
            raise TemplateError(
                f"{where}.type", f"value {result['type']!r} is not one of {list(allowed)}"
            )
        return result

    def get_attribute(self, attribute: str) -> Any:
        return self.properties.get("value") if attribute == "value" else None


_CLASSES: Mapping[str, str] = {
    "lettersdigits": string.ascii_letters + string.digits,
    "letters": string.ascii_letters,
    "lowercase": string.ascii_lowercase,
    "uppercase": string.ascii_uppercase,
    "digits": string.digits,
    "hexdigits": string.digits + "ABCDEF",
    "octdigits": string.octdigits,
}


class RandomString(Resource):
    """OS::Heat::RandomString: a random `value`, regenerated only when replaced."""

    type_name = "OS::Heat::RandomString"
    properties_schema = {
        "length": Prop("integer", default=32),
        "character_classes": Prop("list"),
        "salt": Prop("string"),
    }
    attributes_schema = frozenset({"value"})

    @classmethod
    def complete(cls, properties: Mapping[str, Any], where: str) -> dict[str, Any]:
        result = super().complete(properties, where)
        length = result["length"]
        if not 1 <= length <= 512:
            raise TemplateError(f"{where}.length", f"value {length} is not in [1, 512]")
        for index, item in enumerate(result["character_classes"] or []):
            here = f"{where}.character_classes[{index}]"
            if not isinstance(item, Mapping) or item.get("class", "lettersdigits") not in _CLASSES:
                raise TemplateError(here, f"class must be one of {sorted(_CLASSES)}")
        return result

    def handle_create(self) -> Any:
        self.data["value"] = self._generate()
        return None

    def _generate(self) -> str:
        rng = secrets.SystemRandom()
        classes = self.properties.get("character_classes") or [{"class": "lettersdigits"}]
        chars: list[str] = []
        pool = ""
        for item in classes:
            alphabet = _CLASSES[item.get("class", "lettersdigits")]
            pool += alphabet
            chars.extend(rng.choice(alphabet) for _ in range(int(item.get("min", 1))))
        length = int(self.properties["length"])
        chars.extend(rng.choice(pool) for _ in range(max(0, length - len(chars))))
        rng.shuffle(chars)
        return "".join(chars)

    def get_attribute(self, attribute: str) -> Any:
        return self.data.get("value") if attribute == "value" else None


class TestResource(Resource):
    """OS::Heat::TestResource, the fixture of Heat's functional tests."""

    __test__ = False  # not a pytest class
    type_name = "OS::Heat::TestResource"
    properties_schema = {
        "value": Prop("string", default="test_string", update_allowed=True),
        "update_replace": Prop("boolean", default=False, update_allowed=True),
        "fail": Prop("boolean", default=False, update_allowed=True),
        "wait_secs": Prop("number", default=0, update_allowed=True),
        "action_wait_secs": Prop("map", update_allowed=True),
    }
    attributes_schema = frozenset({"output"})

    @classmethod
    def needs_replace(
        cls, changed: set[str], new: Mapping[str, Any], old: Mapping[str, Any]
    ) -> bool:
        return bool(new.get("update_replace")) or super().needs_replace(changed, new, old)

    def _deadline(self, action: str) -> float:
        waits = self.properties.get("action_wait_secs") or {}
        secs = waits.get(action, self.properties.get("wait_secs") or 0)
        return time.monotonic() + float(secs or 0)

    def _done(self, deadline: float, *, may_fail: bool) -> bool:
        if time.monotonic() < deadline:
            return False
        if may_fail and self.properties.get("fail"):
            raise ResourceFailure(f"Test Resource failed {self.name}")
        return True

    def handle_create(self) -> Any:
        return self._deadline("create")

    def check_create_complete(self, handle: Any) -> bool:
        return self._done(handle, may_fail=True)

    def handle_update(self, new_properties: Mapping[str, Any], changed: set[str]) -> Any:
        self.properties = dict(new_properties)
        return self._deadline("update")

    def check_update_complete(self, handle: Any) -> bool:
        return self._done(handle, may_fail=True)

    def handle_delete(self) -> Any:
        return self._deadline("delete")

    def check_delete_complete(self, handle: Any) -> bool:
        return self._done(handle, may_fail=False)

    def get_attribute(self, attribute: str) -> Any:
        return self.properties.get("value") if attribute == "output" else None


class Registry:
    """Resource types by their template name."""

    def __init__(self, *types: type[Resource]) -> None:
        self._types: dict[str, type[Resource]] = {}
        for rtype in types:
            self.register(rtype)

    def register(self, rtype: type[Resource]) -> None:
        self._types[rtype.type_name] = rtype

    def get(self, type_name: str, where: str) -> type[Resource]:
        try:
            return self._types[type_name]
        except KeyError:
            raise TemplateError(where, f"unknown resource type {type_name!r}") from None

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._types


def default_registry() -> Registry:
    return Registry(NoneResource, Value, RandomString, TestResource)
