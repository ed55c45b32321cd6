"""Reading storyboard YAML that may be hostile: size, alias-bomb, depth and duplicate-key limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import yaml

from shotline.errors import InputError
from shotline.storyboard.model import STORYBOARD_FILE

MAX_FILE_BYTES = 1 << 20  # a storyboard.yaml is a few kB; anything near this is a mistake or an attack
MAX_YAML_NODES = 100_000  # after alias expansion: a "billion laughs" file stops here
MAX_YAML_DEPTH = 64


class _YamlTooBig(yaml.YAMLError):  # type: ignore[misc]  # no PyYAML stubs installed: yaml.YAMLError is Any
    pass


class _Loader(yaml.SafeLoader):  # type: ignore[misc]  # no PyYAML stubs installed: yaml.SafeLoader is Any
    """PyYAML's safe loader, refusing duplicate keys (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # unhashable: the base class raises its own error for it
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        return cast(dict[Any, Any], super().construct_mapping(node, deep=deep))


def read_yaml(path: Path, storyboard: str) -> tuple[Any, InputError | None]:
    def problem(message: str) -> tuple[None, InputError]:
        return None, InputError(message, storyboard=storyboard)

    try:
        if not path.is_file():
            return problem(f"no {STORYBOARD_FILE} in the storyboard folder")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return problem(f"{STORYBOARD_FILE} is {size:,} bytes; at most {MAX_FILE_BYTES:,} are accepted")
        data = path.read_bytes()
    except OSError as exc:
        return problem(f"cannot read {STORYBOARD_FILE}: {exc.strerror or exc}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return problem(f"{STORYBOARD_FILE} is not UTF-8 text (bad byte at offset {exc.start})")
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # the reader refuses unprintable characters right here
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_size(node)
        return loader.construct_document(node), None
    except yaml.YAMLError as exc:
        return problem(_yaml_message(exc))
    except RecursionError:
        return problem(f"the YAML is nested more than {MAX_YAML_DEPTH} levels deep")
    finally:
        if loader is not None:
            loader.dispose()


def _check_size(root: yaml.Node) -> None:
    """Refuse a document too deep, recursive, or too large once its aliases are expanded."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise _YamlTooBig("an alias refers to the node that contains it (a recursive structure)")
        if depth > MAX_YAML_DEPTH:
            raise _YamlTooBig(f"the YAML is nested more than {MAX_YAML_DEPTH} levels deep")
        open_nodes.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        open_nodes.discard(key)
        if total > MAX_YAML_NODES:
            raise _YamlTooBig(f"the YAML expands to more than {MAX_YAML_NODES:,} values (aliases included)")
        sizes[key] = total
        return total

    size(root, 0)


def _yaml_message(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    if isinstance(exc, yaml.reader.ReaderError):
        return f"YAML syntax error at character {exc.position + 1}: {exc.reason} (#x{exc.character:04x})"
    if isinstance(exc, _YamlTooBig):
        return f"YAML refused: {exc}"
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    kind = "YAML error" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error"
    return f"{kind}{at}: {problem}"
