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
from .condition import parse_condition
from .evaluate import matches
from .rule import load_rule

__all__ = ["parse_condition", "load_rule", "matches", "convert"]


def convert(rule, target: str, mapping_file=None, **options) -> str:
    """The query text of a loaded rule for a target (athena, duckdb, kql, pipesearch)."""
    from .backends import get
    return get(target)(mapping_file=mapping_file, **options).convert(rule)
