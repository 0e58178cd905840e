#!/usr/bin/env node
// A `solc` executable for forge, backed by solc-js from node_modules (forge cannot download
// native solc binaries here). Answers the two things forge asks of a compiler:
//   solc --version                       -> "Version: <long version>"
//   solc [...flags] --standard-json      -> standard JSON output for the JSON on stdin
// Imports that are not already in the input's `sources` are resolved from the paths forge
// passes (`--base-path`, `--include-path`, `--allow-paths`) and the working directory.
'use strict';

const fs = require('fs');
const path = require('path');

const solc = require(path.join(__dirname, '..', 'node_modules', 'solc'));

const args = process.argv.slice(2);

if (args.includes('--version') || args.includes('-v')) {
  process.stdout.write('solc, the solidity compiler commandline interface\n');
  process.stdout.write(`Version: ${solc.version()}\n`);
  process.exit(0);
}

if (!args.includes('--standard-json')) {
  process.stderr.write(`solc-shim: only --version and --standard-json are supported (got: ${args.join(' ')})\n`);
  process.exit(2);
}

// Directories that imports may be resolved against.
const roots = [process.cwd()];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--base-path' || a === '--include-path') {
    if (args[i + 1]) roots.push(path.resolve(args[i + 1]));
    i++;
  } else if (a === '--allow-paths') {
    if (args[i + 1]) for (const p of args[i + 1].split(',')) if (p) roots.push(path.resolve(p));
    i++;
  }
}

function findImports(importPath) {
  const candidates = path.isAbsolute(importPath)
    ? [importPath]
    : roots.map((r) => path.join(r, importPath));
  for (const c of candidates) {
    try {
      return { contents: fs.readFileSync(c, 'utf8') };
    } catch (_) {
      // try the next root
    }
  }
  return { error: `solc-shim: file not found: ${importPath} (searched ${roots.join(', ')})` };
}

const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  const input = Buffer.concat(chunks).toString('utf8');
  const output = solc.compile(input, { import: findImports });
  process.stdout.write(output);
});
