"""The three patch formats the API server accepts, applied to plain JSON.

Reference: RFC 6902 (JSON Patch), RFC 7386 (JSON Merge Patch) and the Kubernetes "strategic merge
patch" document. The RBAC v1 types declare no patch merge keys (`subjects` and `rules` are plain
lists), so for them a strategic merge patch replaces lists whole, exactly like a merge patch; only the
`$patch: delete` directive on an object is honoured on top.
"""

import copy
from typing import Any


class PatchError(Exception):
    """The patch cannot be applied: the server answers 422 (or 400 for a malformed document)."""


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> Any:
    target = doc
    for part in parts[:-1]:
        try:
            target = target[int(part)] if isinstance(target, list) else target[part]
        except (KeyError, IndexError, ValueError) as exc:
            raise PatchError(f"path not found: /{'/'.join(parts)}") from exc
    return target


def _index(container: list[Any], part: str, *, adding: bool) -> int:
    if adding and part == "-":
        return len(container)
    try:
        index = int(part)
    except ValueError as exc:
        raise PatchError(f"not a list index: {part!r}") from exc
    if index < 0 or index > len(container) - (0 if adding else 1):
        raise PatchError(f"list index out of range: {index}")
    return index


def _get(doc: Any, parts: list[str]) -> Any:
    if not parts:
        return doc
    parent = _parent(doc, parts)
    try:
        if isinstance(parent, list):
            return parent[_index(parent, parts[-1], adding=False)]
        return parent[parts[-1]]
    except (KeyError, TypeError) as exc:
        raise PatchError(f"path not found: /{'/'.join(parts)}") from exc


def _remove(doc: Any, parts: list[str]) -> Any:
    parent = _parent(doc, parts)
    if isinstance(parent, list):
        return parent.pop(_index(parent, parts[-1], adding=False))
    if not isinstance(parent, dict) or parts[-1] not in parent:
        raise PatchError(f"path not found: /{'/'.join(parts)}")
    return parent.pop(parts[-1])


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent = _parent(doc, parts)
    if isinstance(parent, list):
        parent.insert(_index(parent, parts[-1], adding=True), value)
    elif isinstance(parent, dict):
        parent[parts[-1]] = value
    else:
        raise PatchError(f"cannot add at /{'/'.join(parts)}")
    return doc


def json_patch(doc: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise PatchError("a JSON patch is a list of operations")
    doc = copy.deepcopy(doc)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid operation {op!r}")
        parts, kind = _pointer(op["path"]), op["op"]
        if kind == "test":
            if _get(doc, parts) != op.get("value"):
                raise PatchError(f"test failed at {op['path']}")
        elif kind == "remove":
            _remove(doc, parts)
        elif kind == "add":
            doc = _add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind == "replace":
            _get(doc, parts)  # must exist
            if parts:
                _remove(doc, parts)
            doc = _add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind in ("move", "copy"):
            source = _pointer(op.get("from", ""))
            value = _remove(doc, source) if kind == "move" else copy.deepcopy(_get(doc, source))
            doc = _add(doc, parts, value)
        else:
            raise PatchError(f"unknown operation {kind!r}")
    return doc


def merge_patch(doc: Any, patch: Any, *, strategic: bool = False) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if strategic and patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    for key, value in patch.items():
        if strategic and key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        else:
            merged = merge_patch(result.get(key), value, strategic=strategic)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    return result
