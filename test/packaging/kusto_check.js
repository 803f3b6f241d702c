// kusto_check.js QUERY_FILE... - parses and analyses each Kusto query (one
// file each) with Microsoft's Kusto language library, against the
// AppServiceConsoleLogs columns Azure Monitor documents. Prints one JSON line
// per file: {"file": ..., "diagnostics": ["message at offset", ...]}.
// NODE_PATH must hold @kusto/language-service-next (test_kusto.py installs it
// into build/kusto/).
'use strict';
const fs = require('fs');
require('@kusto/language-service-next/bridge.js');
require('@kusto/language-service-next/Kusto.Language.Bridge.js');

const K = Kusto.Language;
// The table's columns as Azure Monitor's table reference lists them.
const APP_SERVICE_CONSOLE_LOGS =
  '(_BilledSize: real, Category: string, ContainerId: string, Host: string, ' +
  '_IsBillable: string, Level: string, OperationName: string, _ResourceId: string, ' +
  'ResultDescription: string, SourceSystem: string, _SubscriptionId: string, ' +
  'TenantId: string, TimeGenerated: datetime, Type: string)';

const table = new K.Symbols.TableSymbol.$ctor7('AppServiceConsoleLogs',
  APP_SERVICE_CONSOLE_LOGS, '');
const db = new K.Symbols.DatabaseSymbol.$ctor1('workspace', [table]);
const globals = K.GlobalState.Default.WithDatabase(db);

for (const file of process.argv.slice(2)) {
  const code = K.KustoCode.ParseAndAnalyze(fs.readFileSync(file, 'utf8'), globals);
  const diags = code.GetDiagnostics();
  const out = [];
  for (let i = 0; i < diags.Count; i++) {
    const d = diags.getItem(i);
    out.push(`${d.Message} at offset ${d.Start}`);
  }
  console.log(JSON.stringify({ file, diagnostics: out }));
}
