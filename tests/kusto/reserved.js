// Prints the names Kusto.Language brackets (KustoFacts.BracketNameIfNecessary) although they
// are plain identifiers: the keywords a column name must not be spelled as. Its output is
// templates/kql/reserved.txt; tests/test_kql.py checks the two agree.
"use strict";
require("@kusto/language-service-next/bridge.min.js");
require("@kusto/language-service-next/Kusto.Language.Bridge.min.js");

const K = Kusto.Language;
const words = new Set(["true", "false", "True", "TRUE", "False", "FALSE"]);
for (let kind = 0; kind < 3000; kind++) {
  let text;
  try { text = K.Syntax.SyntaxFacts.GetText(kind); } catch (e) { continue; }
  if (text) words.add(text);
}
const reserved = [...words]
  .filter((w) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(w) && K.KustoFacts.BracketNameIfNecessary(w) !== w)
  .sort();
process.stdout.write(reserved.join("\n") + "\n");
