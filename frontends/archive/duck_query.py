"""What ``rtoc query`` may run against the DuckDB archive: one read-only statement.

``check_statement`` parses the text with DuckDB itself (``extract_statements`` and
``json_serialize_sql``) and walks the parse tree; nothing is matched by regular expression
but the PRAGMA and EXPLAIN prefixes. ``DuckBackend.query`` documents what is accepted and
refused, and runs what passes in a transaction that is always rolled back, on a database
opened with external access off (no file but its own is read or written, whatever slips
through the check). ``plain`` makes
result values carriable by msgpack and JSON.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import duckdb

from rtoc.errors import ArchiveError, QueryRefused


def plain(v: Any) -> Any:
    """A value msgpack and JSON can carry: decimals as float, integers beyond 64 bits and
    everything else (dates, intervals, uuids ...) as text."""
    if v is None or isinstance(v, bool | float | str | bytes):
        return v
    if isinstance(v, int):
        return v if -(1 << 63) <= v < (1 << 64) else str(v)
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, list | tuple):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    return str(v)


# -- query checking ---------------------------------------------------------------------------
_PRAGMAS = {"table_info", "show", "storage_info", "database_size", "version", "database_list",
            "show_tables", "show_tables_expanded", "metadata_info", "platform"}
_TABLE_FUNCTIONS = {
    "range", "generate_series", "unnest", "repeat", "repeat_row", "summary", "json_each",
    "json_tree", "pragma_table_info", "pragma_show", "pragma_storage_info",
    "pragma_database_size", "pragma_version", "pragma_metadata_info", "pragma_platform",
    "pragma_collations", "duckdb_columns", "duckdb_tables", "duckdb_views", "duckdb_schemas",
    "duckdb_databases", "duckdb_types", "duckdb_functions", "duckdb_settings",
    "duckdb_keywords", "duckdb_constraints", "duckdb_indexes", "duckdb_memory",
    "duckdb_dependencies", "duckdb_sequences", "duckdb_optimizers", "test_all_types",
}  # not histogram/histogram_values: their first argument is a table name, so a file too
_SIDE_EFFECTS = {"nextval", "setval", "currval", "setseed", "write_log", "sleep_ms"}
_QUERY_NODES = {"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"}
_EXPLAIN = re.compile(r"\s*explain\s+(?:\(\s*[^)]*\)\s*|analy[sz]e\s+)?", re.I)
_FILE_LIKE = re.compile(r"[./\\:]")
_PRAGMA = re.compile(r"\s*pragma\s+(\w+)\s*(?:\(\s*'[^']*'\s*\))?\s*;?\s*$", re.I)


def check_statement(cur: duckdb.DuckDBPyConnection, sql: str) -> str:
    """The statement to run, or QueryRefused."""
    if not isinstance(sql, str) or not sql.strip():
        raise QueryRefused("query: give one SELECT statement")
    try:
        statements = cur.extract_statements(sql)
    except duckdb.Error as exc:
        raise ArchiveError(f"query: {exc}") from exc
    if len(statements) != 1:
        raise QueryRefused(f"query: one statement at a time, got {len(statements)}")
    kind = statements[0].type
    text = statements[0].query
    if kind == duckdb.StatementType.PRAGMA:
        m = _PRAGMA.match(text)
        if m is None or m.group(1).lower() not in _PRAGMAS:
            raise QueryRefused("query: only PRAGMA " + ", ".join(sorted(_PRAGMAS)) + " allowed")
        return text
    if kind == duckdb.StatementType.EXPLAIN:
        inner = text[_EXPLAIN.match(text).end():]
        inner_statements = cur.extract_statements(inner) if inner.strip() else []
        if len(inner_statements) != 1 or inner_statements[0].type != duckdb.StatementType.SELECT:
            raise QueryRefused("query: EXPLAIN only of a SELECT")
        check_select(cur, inner)
        return text
    if kind != duckdb.StatementType.SELECT:
        raise QueryRefused(f"query: read-only, {kind.name} statements are refused")
    check_select(cur, text)
    return text


def check_select(cur: duckdb.DuckDBPyConnection, text: str) -> None:
    tree = json.loads(cur.execute("SELECT json_serialize_sql(?)", [text]).fetchall()[0][0])
    if tree.get("error"):
        raise QueryRefused(f"query: cannot check it: {tree.get('error_message')}")
    known = {n.lower() for (n,) in cur.execute(
        "SELECT table_name FROM duckdb_tables() UNION SELECT view_name FROM duckdb_views()"
    ).fetchall()}
    ctes: set[str] = set()
    tables: list[str] = []
    table_functions: set[str] = set()
    functions: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for x in node:
                walk(x)
            return
        if not isinstance(node, dict):
            return
        kind = node.get("type")
        if isinstance(kind, str) and kind.endswith("_NODE") and kind not in _QUERY_NODES:
            raise QueryRefused(f"query: read-only, {kind.removesuffix('_QUERY_NODE')} "
                               "inside a SELECT is refused")
        if kind == "BASE_TABLE":
            tables.append(str(node.get("table_name", "")))
        elif kind == "TABLE_FUNCTION":
            table_functions.add(str(node["function"].get("function_name", "")).lower())
        elif node.get("class") == "FUNCTION":
            functions.add(str(node.get("function_name", "")).lower())
        cte_map = node.get("cte_map")
        if isinstance(cte_map, dict):
            ctes.update(str(e.get("key", "")).lower() for e in cte_map.get("map", []))
        for value in node.values():
            walk(value)

    walk(tree["statements"])
    bad = sorted(table_functions - _TABLE_FUNCTIONS)
    if bad:
        raise QueryRefused(f"query: table function {', '.join(bad)} refused (files or SQL "
                           "text cannot be checked)")
    bad = sorted(functions & _SIDE_EFFECTS)
    if bad:
        raise QueryRefused(f"query: function {', '.join(bad)} has side effects")
    # a CTE named like a file is refused too: out of its scope DuckDB would read the file
    bad = sorted(t for t in tables if t.lower() not in known
                 and (t.lower() not in ctes or _FILE_LIKE.search(t)))
    if bad:
        raise QueryRefused(f"query: {', '.join(map(repr, bad))} is not a table or view of the "
                           "archive (files are not read)")
