import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { rm } from 'node:fs/promises';
import { Type } from 'typebox';
import { AppError, notFound } from '../app-error.js';
import { projectContext } from '../auth/access-plugin.js';
import { gitCacheDir, listWorkflowFiles } from '../git/read-workflow-files.js';
import { repositoryUrlProblem } from '../git/repository-url.js';
import { RefNotFoundError, resolveRefName } from '../git/resolve-ref.js';
import { GitError } from '../git/run-git.js';
import { rekeyRepository } from '../keys/rekey-repository.js';
import { repositoryRemote } from '../keys/repository-remote.js';
import type { Resources } from '../resources.js';
import { defaultApiUrl, remoteHostAndPath } from '../../domain/commit-status.js';
import { createRepository, deleteRepository, getRepository, getRepositoryRow, listRepositories, setStatusReporting, updateRepository } from '../store/repository-store.js';
import { forgeTokenPurpose } from '../workers/send-commit-statuses.js';
import { checkRepositoryAccess } from '../workers/check-repository-access.js';
import { IdParams, Name } from './schemas.js';

const fields = {
  url: Type.String({ minLength: 1, maxLength: 2048, description: 'ssh://[user@]host[:port]/path, user@host:path, https://…, http://…, file:///path or an absolute path' }),
  defaultBranch: Type.String({ minLength: 1, maxLength: 255, pattern: '^[^-\\s~^:?*\\[\\\\][^\\s~^:?*\\[\\\\]*$', description: 'Branch used when a run or request names none' }),
  keyType: Type.Union([Type.Literal('ed25519'), Type.Literal('rsa')], { description: 'Deploy key type: ed25519 (default) or rsa (4096 bits) for forges that want RSA' }),
  polling: Type.Boolean({ description: 'Whether its branches and tags are polled for changes (default true); turn it off for a repository whose forge sends webhooks' }),
  knownHosts: Type.Union([Type.String({ maxLength: 65536 }), Type.Null()], {
    description: 'known_hosts lines to pin the host keys; when null, the first access check learns and pins them',
  }),
};
const CreateBody = Type.Object(
  {
    name: Name,
    url: fields.url,
    defaultBranch: Type.Optional(fields.defaultBranch),
    keyType: Type.Optional(fields.keyType),
    knownHosts: Type.Optional(fields.knownHosts),
    polling: Type.Optional(fields.polling),
  },
  { additionalProperties: false },
);
const UpdateBody = Type.Object(
  { name: Type.Optional(Name), url: Type.Optional(fields.url), defaultBranch: Type.Optional(fields.defaultBranch), knownHosts: Type.Optional(fields.knownHosts), polling: Type.Optional(fields.polling) },
  { additionalProperties: false },
);
const StatusBody = Type.Object(
  {
    forge: Type.Union([Type.Literal('github'), Type.Literal('gitlab'), Type.Literal('gitea')], { description: 'github, gitlab, or gitea (Forgejo too)' }),
    repository: Type.Optional(Type.String({ minLength: 1, maxLength: 500, pattern: '^[^\\s]+$', description: 'owner/name on the forge (GitLab: the project path or id); default: the path of the repository URL' })),
    apiUrl: Type.Optional(Type.String({ minLength: 1, maxLength: 2048, pattern: '^https?://[^\\s]+$', description: 'The API base URL (default: https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise; https://HOST for GitLab and Gitea)' })),
    token: Type.String({ minLength: 1, maxLength: 4096, description: 'A token that may set commit statuses (GitHub: repo:status or statuses: write; GitLab: api; Gitea: write:repository); sealed, never shown again' }),
  },
  { additionalProperties: false },
);
const RefQuery = Type.Object({ ref: Type.Optional(Type.String({ minLength: 1, maxLength: 255, pattern: '^[^-\\s]\\S*$', description: 'Branch, tag or full commit sha (default: the default branch)' })) });
const byRepository = { kind: 'repository', param: 'id' } as const;

function checkUrl(url: string | undefined, allowLocal: boolean): void {
  const problem = url === undefined ? undefined : repositoryUrlProblem(url, { allowLocal });
  if (problem) throw new AppError('validation_failed', `Invalid body: url ${problem}`, [{ field: 'url', message: problem }]);
}

/** Empty known_hosts means none pinned. */
const pins = (text: string | null | undefined) => (text === undefined ? undefined : text?.trim() || null);

export const repositoryRoutes: FastifyPluginAsyncTypebox<{ res: Resources }> = async (app, { res }) => {
  const { db } = res.database;
  const tags = ['repositories'];
  const git = { dataDir: res.config.dataDir, timeoutSeconds: res.config.gitTimeoutSeconds };

  app.post(
    '/projects/:id/repositories',
    { config: { access: { capability: 'repository.write', scope: { kind: 'project', param: 'id' } } }, schema: { tags, params: IdParams, body: CreateBody } },
    async (req, reply) => {
      checkUrl(req.body.url, res.config.localRepositories);
      const { name, url, defaultBranch = 'main', keyType = 'ed25519', knownHosts, polling = true } = req.body;
      return reply.status(201).send(await createRepository(db, projectContext(req), { name, url, defaultBranch, keyType, knownHosts: pins(knownHosts) ?? null, polling }));
    },
  );

  app.get('/projects/:id/repositories', { config: { access: { capability: 'repository.read', scope: { kind: 'project', param: 'id' } } }, schema: { tags, params: IdParams } }, async (req) => ({
    items: await listRepositories(db, req.params.id),
  }));

  app.get('/repositories/:id', { config: { access: { capability: 'repository.read', scope: byRepository } }, schema: { tags, params: IdParams } }, async (req) => {
    const repo = await getRepository(db, req.params.id);
    if (!repo) throw notFound('Repository');
    return repo;
  });

  app.patch('/repositories/:id', { config: { access: { capability: 'repository.write', scope: byRepository } }, schema: { tags, params: IdParams, body: UpdateBody } }, async (req) => {
    checkUrl(req.body.url, res.config.localRepositories);
    return updateRepository(db, projectContext(req), req.params.id, { ...req.body, knownHosts: pins(req.body.knownHosts) });
  });

  app.delete('/repositories/:id', { config: { access: { capability: 'repository.delete', scope: byRepository } }, schema: { tags, params: IdParams } }, async (req, reply) => {
    await deleteRepository(db, projectContext(req), req.params.id);
    await rm(gitCacheDir(git.dataDir, req.params.id), { recursive: true, force: true });
    return reply.status(204).send();
  });

  app.post(
    '/repositories/:id/check',
    {
      config: { access: { capability: 'repository.check', scope: byRepository } },
      schema: { tags, params: IdParams, description: 'Runs `git ls-remote` with the deploy key now and returns the repository with the outcome in `access`.' },
    },
    async (req) => checkRepositoryAccess({ db, secretBox: res.secretBox, gitTimeoutSeconds: git.timeoutSeconds }, req.params.id, projectContext(req).actorUserId),
  );

  app.post(
    '/repositories/:id/rekey',
    {
      config: { access: { capability: 'repository.write', scope: byRepository } },
      schema: { tags, params: IdParams, description: 'Replaces the deploy key with a new one; the old key keeps working on the forge until its deploy key is replaced there.' },
    },
    async (req) => {
      const repo = await rekeyRepository({ db, secretBox: res.secretBox }, req.params.id, { type: 'repository.rekeyed', actorUserId: projectContext(req).actorUserId });
      if (!repo) throw notFound('Repository');
      return repo;
    },
  );

  app.put(
    '/repositories/:id/commit-statuses',
    {
      config: { access: { capability: 'repository.write', scope: byRepository } },
      schema: { tags, params: IdParams, body: StatusBody, description: 'Report the runs at its commits to the forge as commit statuses, with this token.' },
    },
    async (req) => {
      const row = await getRepositoryRow(db, req.params.id);
      if (!row) throw notFound('Repository');
      const { forge, token } = req.body;
      const apiUrl = req.body.apiUrl ?? defaultApiUrl(forge, row.url);
      const repository = req.body.repository ?? remoteHostAndPath(row.url)?.path;
      if (apiUrl && !URL.canParse(apiUrl)) throw new AppError('validation_failed', `Invalid body: apiUrl ${apiUrl} is not a URL.`, [{ field: 'apiUrl', message: 'is not a URL' }]);
      if (repository?.split('/').some((seg) => seg === '.' || seg === '..' || seg === '')) {
        throw new AppError('validation_failed', 'Invalid body: repository must be owner/name (no empty, . or .. parts).', [{ field: 'repository', message: 'has an empty, . or .. part' }]);
      }
      if (!apiUrl || !repository) {
        const field = !apiUrl ? 'apiUrl' : 'repository';
        throw new AppError('validation_failed', `The repository URL ${row.url} does not say the forge's ${field}: give ${field}.`, [{ field, message: 'is required for this repository URL' }]);
      }
      return setStatusReporting(db, projectContext(req), row.id, { forge, apiUrl, repository, sealedToken: res.secretBox.seal(token, forgeTokenPurpose(row.id)) });
    },
  );

  app.delete(
    '/repositories/:id/commit-statuses',
    { config: { access: { capability: 'repository.write', scope: byRepository } }, schema: { tags, params: IdParams, description: 'Stop reporting commit statuses, and forget the token.' } },
    async (req) => setStatusReporting(db, projectContext(req), req.params.id, null),
  );

  app.get(
    '/repositories/:id/workflow-files',
    { config: { access: { capability: 'repository.read', scope: byRepository } }, schema: { tags, params: IdParams, querystring: RefQuery } },
    async (req) => {
      const row = await getRepositoryRow(db, req.params.id);
      if (!row) throw notFound('Repository');
      const remote = repositoryRemote(res.secretBox, row);
      try {
        const { commit } = await resolveRefName(remote, req.query.ref ?? row.default_branch, git.timeoutSeconds);
        const paths = await listWorkflowFiles(remote, commit, git);
        return { commit, files: paths.map((path) => ({ path })) };
      } catch (err) {
        if (err instanceof RefNotFoundError) throw new AppError('ref_not_found', err.message);
        if (err instanceof GitError) throw new AppError('repository_unreachable', `git could not read ${row.url}: ${err.message}`);
        throw err;
      }
    },
  );
};
