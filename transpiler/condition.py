"""Condition text -> Condition AST, with grammars/condition.lark and Lark's LALR parser.

The transformer runs during the parse (no parse tree is built) and checks nothing:
an exception inside a Lark transformer reaches users wrapped as VisitError, so name
resolution happens later, in rule.py.
"""
from __future__ import annotations

from functools import cache, lru_cache

from lark import Lark, Transformer, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, v_args

from .errors import ConditionError
from .nodes import AllOf, Condition, Not, OneOf, Ref, and_, or_
from .resources import resource_dir


@v_args(inline=True)
class ToAst(Transformer):
    def or_(self, *args):
        return or_(args)

    def and_(self, *args):
        return and_(args)

    def not_(self, arg):
        return Not(arg)

    def one_of(self, target):
        return OneOf(str(target), target.column)

    def all_of(self, target):
        return AllOf(str(target), target.column)

    def ref(self, token):
        return Ref(str(token), token.column)


@cache
def _parser() -> Lark:
    from . import cache as caches
    grammar = (resource_dir("grammars") / "condition.lark").read_text(encoding="utf-8")
    with caches.grammar("condition", grammar) as kept:     # Lark's analysis, kept between runs
        return Lark(grammar, parser="lalr", transformer=ToAst(), maybe_placeholders=False, cache=kept or False)


_NAMES = {"_OR": "'or'", "_AND": "'and'", "_NOT": "'not'", "_OF": "'of'", "_ALL": "'all of'",
          "_ONE": "'1 of'", "IDENTIFIER": "a search identifier", "TARGET": "a search identifier or 'them'",
          "LPAR": "'('", "RPAR": "')'", "$END": "the end"}


@lru_cache(maxsize=4096)   # rules repeat the same few conditions; the AST is immutable
def parse_condition(text: str) -> Condition:
    """Parse one condition string; ConditionError (kind syntax) with its column if it is not one."""
    if not isinstance(text, str) or not text.strip():
        raise ConditionError("the condition is empty", source=text if isinstance(text, str) else None)
    if "|" in text:
        col = text.index("|") + 1
        raise ConditionError("aggregation expressions ('| count() ...') were removed from Sigma; "
                             "use a correlation rule", col=col, source=text)
    try:
        return _parser().parse(text)
    except UnexpectedInput as e:
        raise ConditionError(_describe(e, text), col=_column(e, text), source=text) from None


def _column(e: UnexpectedInput, text: str) -> int:
    token = getattr(e, "token", None)
    if isinstance(e, UnexpectedEOF) or (token is not None and token.type == "$END") \
            or getattr(e, "column", -1) in (None, -1):
        return len(text.rstrip()) + 1
    return e.column


def _describe(e: UnexpectedInput, text: str) -> str:
    if isinstance(e, UnexpectedCharacters):
        return f"unexpected character {text[e.pos_in_stream]!r}"
    expected = sorted({_NAMES.get(t, t) for t in getattr(e, "expected", ()) or ()})
    token = getattr(e, "token", None)
    found = "the end" if token is None or token.type == "$END" else repr(str(token))
    if expected:
        return f"expected {' or '.join(expected)}, found {found}"
    return f"unexpected {found}"
