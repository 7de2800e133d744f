import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import path from 'node:path';
import { Readable } from 'node:stream';
import { Type } from 'typebox';
import { AppError } from '../app-error.js';
import { ArtifactStorage, artifactTooLarge } from '../artifacts/artifact-storage.js';
import { findArtifact, listArtifacts, uploadArtifact, type Artifact } from '../store/artifact-store.js';
import type { JobIdentity } from '../store/job-token.js';
import type { Resources } from '../resources.js';
import { ARTIFACT_NAME } from '../../domain/names.js';
import { IdParams } from './schemas.js';

const ArtifactParams = Type.Object({
  ...IdParams.properties,
  name: Type.String({ pattern: ARTIFACT_NAME.source, description: 'Artifact name: 1-100 letters, digits, `.`, `_` or `-`' }),
});
const ArtifactSchema = Type.Object({
  id: Type.String(),
  runId: Type.String(),
  jobId: Type.Union([Type.String(), Type.Null()]),
  name: Type.String(),
  size: Type.Integer({ description: 'Bytes of the tar.gz archive' }),
  unpackedSize: Type.Integer({ description: 'Bytes of the tar inside it, which the limits count' }),
  sha256: Type.String(),
  // A Date on the way out, serialized as an ISO timestamp.
  createdAt: Type.Unsafe<Date>({ type: 'string', format: 'date-time' }),
});
const byRun = { kind: 'run', param: 'id' } as const;

function jobOf(req: FastifyRequest): JobIdentity {
  if (!req.job) throw new AppError('internal', 'route has no job access rule');
  return req.job;
}

/** How long a refused upload may go on sending after its answer went out. */
const REFUSED_UPLOAD_GRACE_MS = 10_000;

/**
 * Ends the connection of a refused upload with a lingering close (RFC 9112, 9.6): the answer goes
 * out, then the server stops sending but reads and drops the rest of the body until the client
 * closes. Node would otherwise close at once (the client asked for it, or it could not reuse the
 * connection), and a socket closed with unread data is reset, which can overtake the answer that
 * says why. A client that goes on sending is cut off after a grace period.
 */
function lingerAfterRefusal(req: FastifyRequest, reply: FastifyReply): void {
  const socket = req.raw.socket;
  req.raw.resume();
  reply.raw.removeHeader('connection');
  reply.raw.shouldKeepAlive = true;
  reply.raw.once('finish', () => {
    if (req.raw.complete) return;
    socket.end();
    const cut = setTimeout(() => socket.destroy(), REFUSED_UPLOAD_GRACE_MS).unref();
    socket.once('close', () => clearTimeout(cut));
  });
}

export const artifactRoutes: FastifyPluginAsyncTypebox<{ res: Resources }> = async (app, { res }) => {
  const { db } = res.database;
  const storage = new ArtifactStorage(path.join(res.config.dataDir, 'artifacts'), { maxBytes: res.config.artifactMaxBytes, runMaxBytes: res.config.artifactRunMaxBytes });
  const tags = ['artifacts'];

  // The archive reaches the handler as the request stream, unread, and goes to disk as it arrives.
  app.addContentTypeParser(['application/gzip', 'application/octet-stream'], (req, payload, done) => {
    const declared = Number(req.headers['content-length']);
    done(declared > req.routeOptions.bodyLimit ? artifactTooLarge(storage.artifactLimit) : null, payload);
  });

  const sendArtifact = async (reply: FastifyReply, artifact: (Artifact & { storageKey: string }) | undefined, name: string) => {
    if (!artifact) throw new AppError('not_found', `The run has no artifact named "${name}".`);
    const file = await storage.read(artifact.storageKey);
    return reply
      .type('application/gzip')
      .header('content-length', artifact.size)
      .header('content-disposition', `attachment; filename="${artifact.name}.tar.gz"`)
      .send(file);
  };

  app.put(
    '/jobs/:id/artifacts/:name',
    {
      bodyLimit: storage.artifactLimit.bytes,
      config: { access: { capability: 'job' } },
      schema: {
        tags,
        summary: 'Upload an artifact of the running job (a tar.gz body; 201)',
        description: 'Authenticated with the job’s token. The name must be new in the run.',
        params: ArtifactParams,
        response: { 201: ArtifactSchema },
      },
    },
    async (req, reply) => {
      if (!(req.body instanceof Readable)) throw new AppError('unsupported_media_type', 'Send the artifact as a tar.gz stream (application/gzip).');
      try {
        return reply.status(201).send(await uploadArtifact(db, storage, jobOf(req), req.params.name, req.body));
      } catch (err) {
        if (!req.raw.complete) lingerAfterRefusal(req, reply);
        throw err;
      }
    },
  );

  app.get(
    '/jobs/:id/artifacts/:name',
    {
      config: { access: { capability: 'job' } },
      schema: { tags, summary: 'Download an artifact of the running job’s run (tar.gz)', description: 'Authenticated with the job’s token.', params: ArtifactParams },
    },
    async (req, reply) => sendArtifact(reply, await findArtifact(db, jobOf(req).runId, req.params.name), req.params.name),
  );

  app.get(
    '/runs/:id/artifacts',
    {
      config: { access: { capability: 'run.read', scope: byRun } },
      schema: { tags, summary: 'Artifacts of the run', params: IdParams, response: { 200: Type.Object({ items: Type.Array(ArtifactSchema) }) } },
    },
    async (req) => ({ items: await listArtifacts(db, req.params.id) }),
  );

  app.get(
    '/runs/:id/artifacts/:name',
    { config: { access: { capability: 'run.read', scope: byRun } }, schema: { tags, summary: 'Download an artifact (tar.gz)', params: ArtifactParams } },
    async (req, reply) => sendArtifact(reply, await findArtifact(db, req.params.id, req.params.name), req.params.name),
  );
};
