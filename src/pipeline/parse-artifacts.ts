import type { JobContext } from './job-context.js';
import type { Field, Located } from './yaml-reader.js';

/** Artifacts before matrix expansion, each text with its place in the file. */
export interface ArtifactTemplates {
  upload: { name: Located<string>; paths: Located<string>[] }[];
  download: { name: Located<string>; path: Located<string> }[];
}

/** Reads `artifacts: {upload, download}`; names and paths are checked after matrix expansion. */
export function parseArtifacts(field: Field | undefined, ctx: JobContext): ArtifactTemplates {
  const artifacts: ArtifactTemplates = { upload: [], download: [] };
  const fields = field && ctx.reader.map(field, ['upload', 'download']);
  const upload = fields?.get('upload');
  const download = fields?.get('download');
  for (const item of upload ? ctx.reader.oneOrList(upload) : []) {
    const entry = readUpload(item, ctx);
    if (entry) artifacts.upload.push(entry);
  }
  for (const item of download ? ctx.reader.oneOrList(download) : []) {
    const entry = readDownload(item, ctx);
    if (entry) artifacts.download.push(entry);
  }
  return artifacts;
}

function readUpload(item: Field, ctx: JobContext): ArtifactTemplates['upload'][number] | undefined {
  const fields = ctx.reader.map(item, ['name', 'paths'], 'a map like {name: dist, paths: [dist/]}');
  if (!fields) return undefined;
  const [name, paths] = [fields.get('name'), fields.get('paths')];
  if (!name || !paths) ctx.reader.report(item, `${item.path} needs a name and the paths to upload: {name: dist, paths: [dist/]}`);
  const nameValue = name && ctx.located(name);
  const pathFields = paths ? ctx.reader.oneOrList(paths) : [];
  if (paths && pathFields.length === 0) ctx.reader.report(paths, `${paths.path} must list at least one path`);
  const pathValues = pathFields.map((p) => ctx.located(p)).filter((p): p is Located<string> => p !== undefined);
  return nameValue && pathValues.length > 0 && pathValues.length === pathFields.length ? { name: nameValue, paths: pathValues } : undefined;
}

function readDownload(item: Field, ctx: JobContext): ArtifactTemplates['download'][number] | undefined {
  if (!ctx.reader.isMap(item)) {
    const name = ctx.located(item);
    return name && { name, path: { value: '.', field: item } };
  }
  const fields = ctx.reader.map(item, ['name', 'path']);
  const nameField = fields?.get('name');
  if (fields && !nameField) ctx.reader.report(item, `${item.path} needs the name of the artifact to download`);
  const pathField = fields?.get('path');
  const name = nameField && ctx.located(nameField);
  const path = pathField ? ctx.located(pathField) : name && { value: '.', field: name.field };
  return name && path ? { name, path } : undefined;
}
