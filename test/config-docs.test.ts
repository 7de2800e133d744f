import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SETTINGS, type SettingSpec } from '../src/config/config-schema.js';

interface Row {
  name: string;
  defaultCell: string;
  description: string;
}

/** The rows of the `Setting | Default | Description` table in docs/configuration.md. */
function documentedSettings(): Row[] {
  const text = readFileSync(new URL('../docs/configuration.md', import.meta.url), 'utf8');
  const lines = text.split('\n');
  const header = lines.findIndex((l) => /^\|\s*Setting\s*\|\s*Default\s*\|\s*Description\s*\|\s*$/.test(l));
  if (header < 0) throw new Error('docs/configuration.md has no "| Setting | Default | Description |" table');
  const rows: Row[] = [];
  for (const line of lines.slice(header + 2)) {
    if (!line.startsWith('|')) break;
    const cells = line.split('|').slice(1, -1).map((c) => c.trim());
    if (cells.length !== 3) throw new Error(`table row does not have three cells: ${line}`);
    const name = /^`([A-Z0-9_]+)`$/.exec(cells[0]!)?.[1];
    if (!name) throw new Error(`first cell is not a setting name in backticks: ${line}`);
    rows.push({ name, defaultCell: cells[1]!, description: cells[2]! });
  }
  return rows;
}

const rows = documentedSettings();
const specs = SETTINGS as Record<string, SettingSpec>;

describe('docs/configuration.md', () => {
  it('documents exactly the settings in the schema, once each', () => {
    const names = rows.map((r) => r.name);
    expect(new Set(names).size, 'no setting is documented twice').toBe(names.length);
    expect([...names].sort()).toEqual(Object.keys(SETTINGS).sort());
  });

  it.each(rows)('gives the schema default of $name', ({ name, defaultCell }) => {
    const spec = specs[name]!;
    if (spec.default === undefined) {
      // No default in the schema: the cell says so with a dash.
      expect(defaultCell).toMatch(/^—/);
    } else {
      expect(/^`([^`]*)`/.exec(defaultCell)?.[1], `default cell of ${name}: ${defaultCell}`).toBe(String(spec.default));
    }
  });

  it.each(rows)('states the range or allowed values of $name', ({ name, description }) => {
    const spec = specs[name]!;
    if (spec.kind === 'integer') expect(description).toContain(`${spec.min}–${spec.max}`);
    if (spec.kind === 'enum') for (const v of spec.values ?? []) expect(description).toContain(`\`${v}\``);
    if (spec.kind === 'boolean') expect(description).toMatch(/^Boolean\./);
  });
});
