"""Load a policy file: bytes -> YAML -> schema -> compiled policy, all or nothing.

The policy hash is ``sha256:`` over the file's exact bytes, so a hash pinned with
``--require-policy-hash`` or signed with ``tollgate policy sign`` names exactly what
was loaded. Every error names the file, the rule and the key; a policy with any error
is never half-loaded.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import yaml
from pydantic import ValidationError

from sidecar.errors import PolicyError
from sidecar.policy.compiler import CompiledPolicy, compile_policy, rule_label
from sidecar.policy.schema import PolicyDocument

MAX_POLICY_BYTES = 4 * 2**20


# libyaml's parser when PyYAML was built with it: the same safe constructors, parsing a
# 1,000-rule policy about ten times faster than the pure-Python one.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    """SafeLoader that refuses duplicate mapping keys instead of keeping the last one."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # Most nodes of a policy are plain strings, whose value is the node's text: the
        # same result as the str constructor, without the generic machinery around it.
        if node.tag == _STR_TAG and isinstance(node, yaml.ScalarNode):
            return node.value
        return super().construct_object(node, deep)


_STR_TAG = "tag:yaml.org,2002:str"


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,  # type: ignore[arg-type]
)


def load_yaml_strict(text: str) -> Any:
    """Safe YAML that refuses duplicate keys (also used for policy test files)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)


def policy_hash(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _location(loc: tuple[int | str, ...], raw: Any) -> str:
    """Render a pydantic error location as ``rules[3] (id 'x'): path.glob``."""
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        index = loc[1]
        rule_id = None
        rules = raw.get("rules") if isinstance(raw, dict) else None
        if isinstance(rules, list) and index < len(rules) and isinstance(rules[index], dict):
            found = rules[index].get("id")
            rule_id = found if isinstance(found, str) else None
        # Union members show up as type names in the location; they help nobody.
        keys = [str(p) for p in loc[2:] if not _is_union_tag(p)]
        return rule_label(index, rule_id) + (": " + ".".join(keys) if keys else "")
    keys = [f"[{p}]" if isinstance(p, int) else str(p) for p in loc if not _is_union_tag(p)]
    return ".".join(keys).replace(".[", "[") or "(top level)"


def _is_union_tag(part: int | str) -> bool:
    return isinstance(part, str) and (
        part in {"str", "int", "MatcherSpec"} or part.startswith(("list[", "function-"))
    )


def _schema_problems(error: ValidationError, raw: Any) -> list[str]:
    problems: list[str] = []
    for item in error.errors(include_url=False):
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        text = f"{_location(tuple(item['loc']), raw)}: {message}"
        if text not in problems:
            problems.append(text)
    return problems


def load_policy_bytes(data: bytes, source: str) -> CompiledPolicy:
    """Parse, validate and compile a policy. Raises ``PolicyError`` listing every problem."""
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError(source, [f"file is larger than {MAX_POLICY_BYTES} bytes"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(source, [f"not UTF-8: {exc}"]) from exc
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise PolicyError(source, [f"invalid YAML: {exc}".replace("\n", " ")]) from exc
    if not isinstance(raw, dict):
        raise PolicyError(source, ["the document must be a mapping with version: 1"])
    try:
        document = PolicyDocument.model_validate(raw)
    except ValidationError as exc:
        # Pydantic reports each failing union member; keep the messages people can act on.
        raise PolicyError(source, _schema_problems(exc, raw)) from None
    compiled, problems = compile_policy(document, source=source, policy_hash=policy_hash(data))
    if compiled is None:
        raise PolicyError(source, problems)
    return compiled


def load_policy_file(path: str | os.PathLike[str]) -> CompiledPolicy:
    """Read and load the policy at ``path``. Raises ``PolicyError``."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as handle:
            data = handle.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise PolicyError(source, [f"cannot read: {exc.strerror or exc}"]) from exc
    return load_policy_bytes(data, source)
