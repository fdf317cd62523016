// Checks KQL with Microsoft's Kusto.Language (the parser/analyzer behind the Kusto editors),
// compiled to JavaScript in @kusto/language-service-next. One process for many queries:
//
//   stdin : {"queries": [{"id": "...", "query": "...", "table": "T", "columns": [["Col", "string"], ...]}],
//            "literals": ["\"a\\tb\"", ...],       (optional: KQL string literals to decode)
//            "names": ["a.b", ...],               (optional: names to bracket as the editor would)
//            "strings": ["T | where a == \"x\"", ...]} (optional: a query's string tokens, decoded)
//   stdout: {"queries": {"<id>": [{"code", "severity", "message", "start", "length"}]},
//            "literals": [decoded text | null], "names": ["['a.b']", ...], "strings": [[text, ...] | null]}
//   With --lines: one JSON request per input line, one answer per output line.
//
// Each query is analyzed against a database holding just its table with the declared columns,
// so unknown columns (KS142) and type errors (KS106, KS141) surface as diagnostics.
"use strict";
require("@kusto/language-service-next/bridge.min.js");
require("@kusto/language-service-next/Kusto.Language.Bridge.min.js");

const K = Kusto.Language;
const S = K.Symbols;

function globals(table, columns, cache) {
  const schema = "(" + columns.map(([name, type]) => `${K.KustoFacts.BracketNameIfNecessary(name)}:${type}`).join(", ") + ")";
  const key = table + schema;
  if (!cache.has(key)) {
    const symbol = new S.TableSymbol.$ctor7(table, schema, null);
    cache.set(key, K.GlobalState.Default.WithDatabase(new S.DatabaseSymbol.ctor("db", [symbol])));
  }
  return cache.get(key);
}

function diagnostics(query, gs) {
  const code = K.KustoCode.ParseAndAnalyze(query, gs);
  return Bridge.toArray(code.GetDiagnostics()).map((d) => ({
    code: d.Code, severity: d.Severity, message: d.Message, start: d.Start, length: d.Length,
  }));
}

function decode(literal) {
  const code = K.KustoCode.Parse("print " + literal);
  if (Bridge.toArray(code.GetDiagnostics()).length) return null;
  return K.KustoFacts.GetStringLiteralValue(literal);
}

// The string literal tokens of a query, decoded, in order (null when the query has errors).
function strings(query) {
  const code = K.KustoCode.Parse(query);
  if (Bridge.toArray(code.GetDiagnostics()).length) return null;
  const out = [];
  for (let t = code.Syntax.GetFirstToken(); t; t = t.GetNextToken()) {
    if (t.Kind === K.Syntax.SyntaxKind.StringLiteralToken) out.push(K.KustoFacts.GetStringLiteralValue(t.Text));
  }
  return out;
}

function main(input, lines) {
  const request = JSON.parse(input);
  const cache = new Map();
  const out = { queries: {}, literals: [], names: [] };
  for (const q of request.queries || []) {
    out.queries[q.id] = diagnostics(q.query, globals(q.table, q.columns || [], cache));
  }
  out.literals = (request.literals || []).map(decode);
  out.strings = (request.strings || []).map(strings);
  out.names = (request.names || []).map((n) => K.KustoFacts.BracketNameIfNecessary(n));
  process.stdout.write(JSON.stringify(out) + (lines ? "\n" : ""));
}

if (process.argv.includes("--lines")) {
  // One request per line, one answer per line: a long-lived checker for property tests.
  const rl = require("readline").createInterface({ input: process.stdin });
  rl.on("line", (line) => main(line, true));
} else {
  let input = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk) => { input += chunk; });
  process.stdin.on("end", () => main(input));
}
