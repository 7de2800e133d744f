#!/usr/bin/env node
// Keeps the layering of DESIGN.md true: imports only point inward, and only config/ reads the
// environment. Prints each violation and exits 1 when there is one.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const SRC = path.resolve(import.meta.dirname, '..', 'src');
/** folder -> folders (under src/) it must not import from */
const FORBIDDEN = {
  domain: ['db', 'server', 'runner', 'cli', 'protocol', 'pipeline', 'broker', 'mail', 'config'],
  protocol: ['db', 'server', 'runner', 'cli', 'broker', 'mail'],
  pipeline: ['db', 'server', 'runner', 'cli', 'broker', 'mail'],
  runner: ['db', 'server', 'cli', 'broker', 'mail'],
  db: ['server', 'runner', 'cli'],
  server: ['cli'],
  config: ['db', 'server', 'runner', 'cli', 'domain'],
};
/** Modules with I/O that domain/ must not use. */
const IO_MODULES = /^(node:|fs|net|http|child_process|pg|kysely|fastify|ws|amqplib|pino)/;

function* files(dir) {
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) yield* files(full);
    else if (full.endsWith('.ts')) yield full;
  }
}

const problems = [];
for (const file of files(SRC)) {
  const rel = path.relative(SRC, file);
  const folder = rel.split(path.sep)[0];
  const text = readFileSync(file, 'utf8');
  if (folder !== 'config' && /process\.env\b/.test(text)) problems.push(`${rel}: reads process.env (only src/config/ may)`);
  for (const m of text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]/gm)) {
    const spec = m[1];
    if (spec.startsWith('.')) {
      const target = path.relative(SRC, path.resolve(path.dirname(file), spec)).split(path.sep)[0];
      if (FORBIDDEN[folder]?.includes(target)) problems.push(`${rel}: imports ${spec} (${folder}/ must not depend on ${target}/)`);
    } else if (folder === 'domain' && IO_MODULES.test(spec) && !rel.endsWith('.test.ts')) {
      problems.push(`${rel}: imports ${spec} (domain/ is pure logic, no I/O)`);
    }
  }
}
for (const p of problems) console.error(p);
if (problems.length) process.exit(1);
console.log(`import boundaries ok`);
