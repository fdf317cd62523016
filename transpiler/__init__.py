"""Sigma rules to Athena/DuckDB SQL, KQL and pipe-search queries, with a reference evaluator.

The public API is four functions:

>>> from transpiler import load_rule, matches, convert, parse_condition
>>> rule = load_rule('''
... title: IAM User Created
... logsource: {product: aws, service: cloudtrail}
... detection:
...     selection: {eventSource: iam.amazonaws.com, eventName: CreateUser}
...     filter: {errorCode|exists: true}
...     condition: selection and not filter
... ''')
>>> matches(rule.query, {"eventSource": "iam.amazonaws.com", "eventName": "createuser"})
True
>>> matches(rule.query, {"eventSource": "iam.amazonaws.com", "eventName": "CreateUser", "errorCode": "AccessDenied"})
False
>>> parse_condition("selection and not 1 of filter_*")
And(args=(Ref(name='selection', col=1), Not(arg=OneOf(pattern='filter_*', col=24))))
"""
__all__ = ["parse_condition", "load_rule", "matches", "convert"]

# Imported when first used (PEP 562): `python -m transpiler` and the sigma-transpile command
# import the package before cli.main runs, and a warm `convert` needs neither Lark nor RE2.
_LAZY = {"parse_condition": ".condition", "matches": ".evaluate", "load_rule": ".rule"}


def __getattr__(name):
    if name in _LAZY:
        from importlib import import_module
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])


def convert(rule, target: str, mapping_file=None, **options) -> str:
    """The query text of a loaded rule for a target (athena, duckdb, kql, pipesearch)."""
    from .backends import get
    return get(target)(mapping_file=mapping_file, **options).convert(rule)
