import { ARTIFACT_NAME, IMAGE, LABEL } from '../domain/names.js';
import type { JobTemplate } from './parse-job.js';
import { referencesMatrix } from './substitute-matrix.js';
import type { CompiledJob } from './workflow-model.js';
import type { Field, YamlReader } from './yaml-reader.js';


export interface JobInstances {
  template: JobTemplate;
  jobs: CompiledJob[];
}

/**
 * Checks what is only known after matrix expansion: runner labels, images, artifact names and paths,
 * that upload names are unique in the workflow, and that each download is uploaded by a job
 * the downloading job needs (`closure`: transitive needs by job id).
 */
export function checkInstances(all: JobInstances[], closure: Map<string, Set<string>>, reader: YamlReader): void {
  const uploaders = new Map<string, CompiledJob>();
  for (const { template, jobs } of all) {
    for (const job of jobs) {
      template.runsOn.forEach(({ field }, i) => {
        if (!LABEL.test(job.runsOn[i]!)) reader.report(field, `${field.path} label "${job.runsOn[i]}" must be 1 to 64 letters, digits, ".", "_", ":" or "-"`);
      });
      const image = template.image?.field;
      if (image && job.image !== null && !IMAGE.test(job.image)) {
        reader.report(image, `${image.path} "${job.image}" is not a container image name (a letter or digit, then letters, digits and . _ / : @ -, at most 512)`);
      }
    }
    template.artifacts.upload.forEach((upload, i) => {
      const shared = jobs.length > 1 && !referencesMatrix(upload.name.value);
      if (shared) reader.report(upload.name.field, `${upload.name.field.path} "${upload.name.value}" is the same for every matrix instance; put \${{ matrix.<axis> }} in it so each instance uploads its own artifact`);
      for (const job of jobs) {
        const { name, paths } = job.upload[i]!;
        if (checkName(name, upload.name.field, reader)) {
          const other = uploaders.get(name);
          if (!other) uploaders.set(name, job);
          else if (!shared) reader.report(upload.name.field, `artifact "${name}" is uploaded by ${other.key} and by ${job.key}; upload names must be unique in a workflow`);
        }
        paths.forEach((path, j) => checkPath(path, upload.paths[j]!.field, reader));
      }
    });
  }
  for (const { template, jobs } of all) {
    const needed = closure.get(template.id) ?? new Set<string>();
    template.artifacts.download.forEach((download, i) => {
      for (const job of jobs) {
        const { name, path } = job.download[i]!;
        checkPath(path, download.path.field, reader);
        if (!checkName(name, download.name.field, reader)) continue;
        const uploader = uploaders.get(name);
        if (uploader && needed.has(uploader.id)) continue;
        const available = [...uploaders].filter(([, job]) => needed.has(job.id)).map(([n]) => n);
        const hint = uploader
          ? `; ${uploader.id} uploads it: add it to ${template.field.path}.needs`
          : ` (${available.length > 0 ? `they upload: ${available.join(', ')}` : 'the jobs it needs upload none'})`;
        reader.report(download.name.field, `artifact "${name}" is not uploaded by a job that ${template.id} needs${hint}`);
      }
    });
  }
}

function checkName(name: string, field: Field, reader: YamlReader): boolean {
  if (ARTIFACT_NAME.test(name)) return true;
  reader.report(field, `${field.path} "${name}" must be 1 to 100 letters, digits, ".", "_" or "-"`);
  return false;
}

function checkPath(path: string, field: Field, reader: YamlReader): void {
  if (path.trim() === '' || path.startsWith('/') || path.split(/[\\/]/).includes('..')) {
    reader.report(field, `${field.path} "${path}" must be a path relative to the workspace, without ".."`);
  }
}
