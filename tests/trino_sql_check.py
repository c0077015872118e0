"""Checks that SQL files are Trino SQL, the dialect of Athena (engine version 3): each must parse
with sqlglot's Trino dialect and be free of the constructs below, which sqlglot's parser lets
through (it reads many dialects' habits and would quietly rewrite them) but Athena rejects, or
runs with another meaning than DataFusion (`medallion query`, `medallion gold`).

Usage: .venv/bin/python tests/trino_sql_check.py [FILE...]
       .venv/bin/python tests/trino_sql_check.py --self-test
Default FILEs: every sql/gold/*.sql and sql/athena/*.sql of the repository.

Prints one line per file, `ok   FILE` or `FAIL FILE: LINE:COL [rule] what to write instead; ...`.
Exit status 1 when a file fails, 2 when the check cannot run (sqlglot missing: `./run.sh setup`
installs the pinned version into .venv). `--self-test` runs every rule on small snippets.

A file holds exactly one query (SELECT, WITH ..., or a set operation); `-- ` comment lines, such
as the gold models' `-- key: value` header, are ignored (so an `assert_sql:` line is not checked).

Rules beyond the parse:
  statement       more or less than one statement, or one that is not a query
  cast-operator   `x::type`; Trino only has CAST(x AS type)
  ilike           ILIKE; Trino has none: lower(x) LIKE lower('pattern')
  backtick        `name`; Athena quotes names in queries with double quotes (backticks are DDL)
  double-quote    "word": in Trino (and DataFusion) a double-quoted word is a name, not a string.
                  Allowed only where quoting is needed: a keyword ("row", "date") or a name that
                  starts with a digit. Names with capitals are flagged too: Trino folds a quoted
                  name to lower case, DataFusion keeps its case, so the two read different columns
  limit-offset    LIMIT n OFFSET m; Trino wants OFFSET m LIMIT n (DataFusion takes both)
  interval        INTERVAL '1 day'; Trino wants INTERVAL '1' DAY
  function        a function Trino does not have (nvl, ifnull, string_agg, date_part, median,
                  array_length, ...), with the Trino spelling; only names Trino certainly lacks
  string-type     CAST(x AS STRING) or TEXT; Trino's type is VARCHAR
  distinct-on     SELECT DISTINCT ON (...); Trino has none: row_number() in a subquery
  group-alias     GROUP BY or HAVING naming a SELECT alias of another expression: Trino
                  resolves them against the input columns only (an error, or another column of
                  that name), DataFusion also against aliases; repeat the expression
  decimal-literal a literal like 100.0 in arithmetic: Trino reads it as DECIMAL(4,1), DataFusion
                  as DOUBLE, so 100.0 * 3 / 7 is 42.9 in Athena and 42.857... in medallion; use
                  an integer, or CAST(... AS DOUBLE) / DECIMAL explicitly

Not checked (no schema here): that names exist, types (Trino does not compare varchar with a
number, DataFusion casts), and ORDER BY ... DESC on a nullable column (Trino puts nulls last,
DataFusion first: write NULLS LAST). Run the queries in `medallion query` for those.
"""

import argparse
import pathlib
import re
import sys
from typing import NamedTuple

try:
    import sqlglot
    from sqlglot import exp
    from sqlglot.dialects.trino import Trino
    from sqlglot.errors import ErrorLevel, ParseError, TokenError
    from sqlglot.tokens import TokenType
except ImportError:
    print("error: sqlglot is not installed in this Python; run ./run.sh setup (it installs "
          "sqlglot into .venv) and use .venv/bin/python", file=sys.stderr)
    sys.exit(2)

# The version the rules were written against; run.sh (setup_python) installs exactly this one.
SQLGLOT_VERSION = "30.30.0"

REPO = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_GLOBS = ("sql/gold/*.sql", "sql/athena/*.sql")

# Trino's reserved words (Trino docs, "Reserved keywords"): a column with one of these names
# must be double-quoted.
TRINO_RESERVED = {
    "alter", "and", "as", "between", "by", "case", "cast", "constraint", "create", "cross",
    "cube", "current_catalog", "current_date", "current_path", "current_role", "current_schema",
    "current_time", "current_timestamp", "current_user", "deallocate", "delete", "describe",
    "distinct", "drop", "else", "end", "escape", "except", "execute", "exists", "extract",
    "false", "for", "from", "full", "group", "grouping", "having", "in", "inner", "insert",
    "intersect", "into", "is", "join", "json_array", "json_exists", "json_object", "json_query",
    "json_table", "json_value", "left", "like", "listagg", "localtime", "localtimestamp",
    "natural", "normalize", "not", "null", "on", "or", "order", "outer", "prepare", "recursive",
    "right", "rollup", "select", "skip", "table", "then", "trim", "true", "uescape", "union",
    "unnest", "using", "values", "when", "where", "with",
}

# Functions other engines have and Trino (so Athena) does not, with what to write instead. Only
# names that Trino's core certainly lacks; sqlglot rewrites most of them for Trino, so a parse
# alone would pass them.
NOT_IN_TRINO = {
    "nvl": "coalesce(x, y)",
    "ifnull": "coalesce(x, y)",
    "nvl2": "CASE WHEN x IS NOT NULL THEN y ELSE z END",
    "isnull": "x IS NULL",
    "iff": "CASE WHEN c THEN x ELSE y END (or if(c, x, y))",
    "string_agg": "array_join(array_agg(x), ',')",
    "group_concat": "array_join(array_agg(x), ',')",
    "date_part": "extract(field FROM x) or year(x), month(x), ...",
    "datepart": "extract(field FROM x)",
    "dateadd": "date_add(unit, n, x)",
    "datediff": "date_diff(unit, x, y)",
    "date_sub": "date_add(unit, -n, x)",
    "date_bin": "date_trunc(unit, x)",
    "strftime": "date_format(x, format)",
    "array_length": "cardinality(x)",
    "array_to_string": "array_join(x, ',')",
    "array_has": "contains(x, element)",
    "make_array": "ARRAY[x, y]",
    "median": "approx_percentile(x, 0.5)",
    "regexp_match": "regexp_extract(x, pattern)",
    "len": "length(x)",
    "arrow_typeof": "typeof(x)",
    "arrow_cast": "CAST(x AS type)",
    "to_timestamp_seconds": "from_unixtime(x)",
    "to_timestamp_millis": "from_unixtime(x / 1000.0e0)",
    "to_timestamp_micros": "from_unixtime(x / 1000000.0e0)",
}

ARITHMETIC = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod)


class Problem(NamedTuple):
    line: int | None
    col: int | None
    rule: str
    message: str

    def __str__(self):
        where = f"{self.line}:{self.col} " if self.line is not None else ""
        return f"{where}[{self.rule}] {self.message}"


def keywords():
    """Lower-case words that may need double quotes to be used as a name."""
    words = set(TRINO_RESERVED)
    words |= {w.lower() for w in getattr(Trino.generator_class, "RESERVED_KEYWORDS", set())}
    words |= {k.lower() for k in Trino.tokenizer_class.KEYWORDS if re.fullmatch(r"[A-Za-z_]+", k)}
    return words


KEYWORDS = keywords()


def line_col(text, offset):
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, col


def token_problems(text, tokens):
    problems = []

    def at(token, rule, message):
        problems.append(Problem(*line_col(text, token.start), rule, message))

    in_backticks = False
    for i, tok in enumerate(tokens):
        prev = tokens[i - 1] if i > 0 else None
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        kind = tok.token_type
        if kind == TokenType.DCOLON:
            at(tok, "cast-operator", "`::` cast: Trino has none; write CAST(x AS type)")
        elif kind == TokenType.ILIKE:
            at(tok, "ilike", "ILIKE: Trino has none; write lower(x) LIKE lower('pattern')")
        elif kind == TokenType.UNKNOWN and tok.text == "`":
            if not in_backticks:
                at(tok, "backtick", "backtick-quoted name: Athena queries quote names with double "
                   "quotes (backticks are for DDL), and only where a name is a keyword")
            in_backticks = not in_backticks
        elif kind == TokenType.IDENTIFIER:  # a double-quoted name
            name = tok.text
            plain = re.fullmatch(r"[a-z_][a-z0-9_]*", name) and name in KEYWORDS
            digit_first = re.fullmatch(r"[0-9][a-z0-9_]*", name)
            if not (plain or digit_first):
                hint = (" (Trino folds a quoted name to lower case, DataFusion keeps its case)"
                        if name != name.lower() else "")
                at(tok, "double-quote", f'"{name}" is a name in Trino, not a string: write '
                   f"'{name}' for a string; quote a name only where it is a keyword{hint}")
        elif kind == TokenType.LIMIT and nxt is not None and i + 2 < len(tokens) \
                and tokens[i + 2].token_type == TokenType.OFFSET:
            at(tok, "limit-offset", "LIMIT n OFFSET m: Trino wants OFFSET m LIMIT n")
        elif kind == TokenType.INTERVAL and nxt is not None and nxt.token_type == TokenType.STRING \
                and re.search(r"[A-Za-z]", nxt.text):
            at(nxt, "interval", f"INTERVAL '{nxt.text}': Trino wants the unit outside the "
               "quotes, e.g. INTERVAL '1' DAY")
        elif kind == TokenType.VAR and nxt is not None and nxt.token_type == TokenType.L_PAREN \
                and tok.text.lower() in NOT_IN_TRINO:
            at(tok, "function", f"{tok.text}(): Trino has no such function; write "
               f"{NOT_IN_TRINO[tok.text.lower()]}")
        elif kind == TokenType.TEXT and prev is not None and prev.token_type == TokenType.ALIAS \
                and nxt is not None and nxt.token_type == TokenType.R_PAREN:
            at(tok, "string-type", f"type {tok.text}: Trino's string type is VARCHAR")
    return problems


def node_position(text, node):
    """Line and column of the first name in a node (sqlglot keeps positions on names only)."""
    for sub in node.walk():
        meta = getattr(sub, "meta", None) or {}
        if isinstance(sub, exp.Identifier) and "start" in meta:
            return line_col(text, meta["start"])
    return None, None


def tree_problems(text, statements):
    problems = []
    queries = [s for s in statements if s is not None]
    if len(queries) != 1:
        return [Problem(None, None, "statement",
                        f"{len(queries)} statements: a file holds exactly one query")]
    tree = queries[0]
    if not isinstance(tree, exp.Query):
        return [Problem(*node_position(text, tree), "statement",
                        f"{tree.key.upper()} statement: a file holds one query (SELECT or WITH)")]

    for select in tree.find_all(exp.Select):
        distinct = select.args.get("distinct")
        if distinct is not None and distinct.args.get("on") is not None:
            problems.append(Problem(*node_position(text, distinct), "distinct-on",
                                    "DISTINCT ON: Trino has none; keep row_number() OVER "
                                    "(PARTITION BY ... ORDER BY ...) = 1 in a subquery"))
        aliases = {}
        for projection in select.expressions:
            if isinstance(projection, exp.Alias):
                inner = projection.this
                if isinstance(inner, exp.Column) and inner.name.lower() == projection.alias.lower():
                    continue  # `t.x AS x` names the input column anyway
                aliases[projection.alias.lower()] = projection
        if not aliases:
            continue
        group = select.args.get("group")
        for item in group.expressions if group is not None else []:
            if isinstance(item, exp.Column) and not item.table and item.name.lower() in aliases:
                problems.append(Problem(*node_position(text, item), "group-alias",
                                        f"GROUP BY {item.name} names a SELECT alias: Trino groups "
                                        "by the input column of that name (an error if there is "
                                        "none); repeat the expression or rename the alias"))
        having = select.args.get("having")
        for column in having.find_all(exp.Column) if having is not None else []:
            if column.find_ancestor(exp.Select) is select and not column.table \
                    and column.name.lower() in aliases:
                problems.append(Problem(*node_position(text, column), "group-alias",
                                        f"HAVING {column.name} names a SELECT alias: Trino reads "
                                        "the input column of that name (an error if there is "
                                        "none); repeat the expression"))

    for literal in tree.find_all(exp.Literal):
        if literal.is_string or "." not in literal.this or "e" in literal.this.lower():
            continue
        operand = literal
        while isinstance(operand.parent, (exp.Neg, exp.Paren)):
            operand = operand.parent
        if isinstance(operand.parent, ARITHMETIC):
            problems.append(Problem(*node_position(text, operand.parent), "decimal-literal",
                                    f"{literal.this} in `{operand.parent.sql(dialect='trino')}`: "
                                    "Trino reads it as DECIMAL, DataFusion as DOUBLE, and the "
                                    "results differ; use an integer or an explicit CAST"))
    return problems


def check_text(text):
    """Every problem of one file's SQL, in order of position."""
    dialect = Trino()
    try:
        tokens = dialect.tokenize(text)
    except TokenError as err:
        return [Problem(None, None, "parse", str(err))]
    problems = token_problems(text, tokens)
    try:
        statements = sqlglot.parse(text, read="trino", error_level=ErrorLevel.RAISE)
    except ParseError as err:
        for e in err.errors or [{"description": str(err)}]:
            highlight = e.get("highlight") or ""
            line, col = e.get("line"), e.get("col")
            if col is not None and highlight and "\n" not in highlight:
                col = max(1, col - len(highlight) + 1)  # sqlglot gives the token's last column
            near = f" (near `{highlight}`)" if highlight else ""
            description = re.sub(r"<Token token_type: [^,]+, text: ([^,]*),[^>]*>", r"`\1`",
                                 str(e.get("description")))
            problems.append(Problem(line, col, "parse", f"{description}{near}"))
    else:
        problems += tree_problems(text, statements)
    return sorted(problems, key=lambda p: (p.line or 0, p.col or 0))


def display(path):
    try:
        return str(path.resolve().relative_to(pathlib.Path.cwd()))
    except ValueError:
        return str(path)


def check_files(paths):
    failed = 0
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            print(f"FAIL {display(path)}: cannot read it: {err}")
            failed += 1
            continue
        problems = check_text(text)
        if problems:
            print(f"FAIL {display(path)}: " + "; ".join(str(p) for p in problems))
            failed += 1
        else:
            print(f"ok   {display(path)}")
    return failed


# (SQL, the rule it must trip, or None for SQL that must pass)
SELF_TEST = [
    ("SELECT CAST(a AS VARCHAR), \"row\", \"1st\" FROM t OFFSET 2 LIMIT 3", None),
    ("-- header: x\nSELECT d, COUNT(*) FROM t GROUP BY d", None),
    ("SELECT CAST(x AS DATE) AS d, COUNT(*) FROM t GROUP BY CAST(x AS DATE)", None),
    ("SELECT t.x AS x FROM t GROUP BY x", None),
    ("SELECT 100 * CAST(a AS DOUBLE) / 7, a > 1.5 FROM t", None),
    ("SELECT a FROM t WHERE b = 'it''s'", None),
    ("SELECT a::int FROM t", "cast-operator"),
    ("SELECT a FROM t WHERE b ILIKE 'x%'", "ilike"),
    ("SELECT `a` FROM t", "backtick"),
    ("SELECT a FROM t WHERE status = \"paid\"", "double-quote"),
    ("SELECT \"Country\" FROM t", "double-quote"),
    ("SELECT a FROM t LIMIT 3 OFFSET 2", "limit-offset"),
    ("SELECT a + INTERVAL '1 day' FROM t", "interval"),
    ("SELECT nvl(a, 0) FROM t", "function"),
    ("SELECT median(a) FROM t", "function"),
    ("SELECT CAST(a AS STRING) FROM t", "string-type"),
    ("SELECT DISTINCT ON (a) a, b FROM t", "distinct-on"),
    ("SELECT CAST(x AS DATE) AS d, COUNT(*) FROM t GROUP BY d", "group-alias"),
    ("SELECT a, COUNT(*) AS n FROM t GROUP BY a HAVING n > 1", "group-alias"),
    ("SELECT 100.0 * a / b FROM t", "decimal-literal"),
    ("SELECT 1; SELECT 2", "statement"),
    ("DELETE FROM t", "statement"),
    ("SELECT a FROM t WHERE", "parse"),
    ("SELECT a FROM t QUALIFY row_number() OVER () = 1", "parse"),
    ("SELECT 'unterminated FROM t", "parse"),
]


def self_test():
    passed = failed = 0
    for sql, rule in SELF_TEST:
        rules = [p.rule for p in check_text(sql)]
        good = rules == [] if rule is None else rule in rules
        if good:
            passed += 1
        else:
            failed += 1
            print(f"FAIL {sql!r}: expected {rule or 'no problem'}, got {rules or 'none'}")
    print(f"{passed} passed, {failed} failed")
    return failed


def main():
    parser = argparse.ArgumentParser(
        description="Check SQL files against Trino (Athena) with sqlglot.")
    parser.add_argument("files", nargs="*", type=pathlib.Path,
                        help="SQL files (default: sql/gold/*.sql and sql/athena/*.sql)")
    parser.add_argument("--self-test", action="store_true", help="run every rule on snippets")
    args = parser.parse_args()

    if sqlglot.__version__ != SQLGLOT_VERSION:
        print(f"note: sqlglot {sqlglot.__version__}; the rules were checked with "
              f"{SQLGLOT_VERSION} (./run.sh setup installs it)", file=sys.stderr)
    if args.self_test:
        return 1 if self_test() else 0

    paths = args.files or sorted(p for g in DEFAULT_GLOBS for p in REPO.glob(g))
    if not paths:
        print(f"FAIL: no SQL files ({', '.join(DEFAULT_GLOBS)} under {REPO})")
        return 1
    return 1 if check_files(paths) else 0


if __name__ == "__main__":
    sys.exit(main())
