"""Rule files' YAML -> Python data: PyYAML's safe schema, with a duplicate key an error.

PyYAML's C parser composes each document into nodes; its Python constructor then spends
more time than the parser turning them into dicts, lists and scalars: a generic dispatch and
bookkeeping per node for anchors, recursive structures and merge keys. For a document
without anchors (`&`), whose nodes are all plain maps, sequences and scalars of the safe
schema, `_direct` builds the same data in one recursion; anything else (a merge key `<<`, an
explicit tag, a duplicate key, a key that is a map or list, a bad date, nesting deep enough to
exhaust the recursion: any exception) falls back to PyYAML's constructor, which decides it
as before (tests/test_yamlload.py checks both ways agree on every document of the corpus).
"""
from __future__ import annotations

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

try:  # the C parser is ten times faster; fall back where libyaml is missing
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader

YAMLError = yaml.YAMLError
_STR, _SEQ, _MAP = "tag:yaml.org,2002:str", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"
_SCALARS = {tag: yaml.SafeLoader.yaml_constructors[tag] for tag in (
    "tag:yaml.org,2002:null", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp")}


class _Fallback(Exception):
    """The document needs PyYAML's own constructor."""


class RuleLoader(_Loader):
    """The YAML loader for rules: a duplicate key is an error, not a silent overwrite."""

    direct = True                 # set False for a text with anchors

    def construct_document(self, node):
        if self.direct:
            try:
                return self._direct(node)
            except Exception:             # noqa: BLE001 - whatever it is, PyYAML's constructor
                pass                      # decides, and raises what it raises, as it would have
        return super().construct_document(node)

    def _direct(self, node):
        tag, kind = node.tag, type(node)
        if kind is ScalarNode:
            if tag == _STR:
                return node.value
            scalar = _SCALARS.get(tag)
            if scalar is None:
                raise _Fallback
            return scalar(self, node)
        if tag == _MAP and kind is MappingNode:
            out = {}
            for key, value in node.value:
                out[self._direct(key)] = self._direct(value)   # a list as key: TypeError
            if len(out) < len(node.value):
                raise _Fallback                                 # a duplicate key
            return out
        if tag == _SEQ and kind is SequenceNode:
            return [self._direct(item) for item in node.value]
        raise _Fallback

    def construct_mapping(self, node, deep=False):
        mapping = super().construct_mapping(node, deep=deep)
        if len(mapping) < len(node.value):      # fewer keys than entries: one came twice
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a map", node.start_mark, f"duplicate key {key!r}", key_node.start_mark)
                seen.add(key)
        return mapping


def load_all(text: str, direct: bool = True):
    """Every document of a YAML text, as yaml.load_all(text, RuleLoader) gives them."""
    loader = RuleLoader(text)
    loader.direct = direct and "&" not in text     # no anchor, so no alias: no shared nodes
    try:
        while loader.check_data():
            yield loader.get_data()
    finally:
        loader.dispose()
