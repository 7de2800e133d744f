import type { JobTemplate } from './parse-job.js';
import type { YamlReader } from './yaml-reader.js';

/**
 * Checks `needs`: every name is a job of the file and the jobs form no cycle (each cycle is
 * reported once, as `a -> b -> a`). Returns each job's transitive needs, by job id.
 */
export function checkNeeds(templates: JobTemplate[], reader: YamlReader): Map<string, Set<string>> {
  const byId = new Map(templates.map((t) => [t.id, t]));
  const ids = templates.map((t) => t.id).join(', ');
  for (const template of templates) {
    for (const need of template.needs) {
      if (!byId.has(need.value)) reader.report(need.field, `${template.field.path}.needs names "${need.value}", which is not a job of this file (jobs: ${ids})`);
    }
  }
  const edges = (t: JobTemplate) => t.needs.filter((n) => byId.has(n.value));

  const reported = new Set<string>();
  const done = new Set<string>();
  const stack: string[] = [];
  const visit = (template: JobTemplate) => {
    if (done.has(template.id)) return;
    stack.push(template.id);
    for (const need of edges(template)) {
      const at = stack.indexOf(need.value);
      if (at >= 0) {
        const cycle = [...stack.slice(at), need.value];
        const key = [...new Set(cycle)].sort().join(' ');
        if (!reported.has(key)) reader.report(need.field, `${template.field.path}.needs forms a cycle: ${cycle.join(' -> ')}; a job cannot wait for itself`);
        reported.add(key);
      } else visit(byId.get(need.value)!);
    }
    stack.pop();
    done.add(template.id);
  };
  templates.forEach(visit);

  const closure = new Map<string, Set<string>>();
  const closureOf = (id: string): Set<string> => {
    const known = closure.get(id);
    if (known) return known;
    const all = new Set<string>();
    closure.set(id, all); // set before recursing, so a cycle ends instead of looping
    for (const need of edges(byId.get(id)!)) {
      all.add(need.value);
      for (const further of closureOf(need.value)) all.add(further);
    }
    return all;
  };
  for (const template of templates) closureOf(template.id);
  return closure;
}
