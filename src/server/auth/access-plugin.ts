import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Db } from '../../db/database.js';
import type { Role } from '../../db/schema.js';
import { CAPABILITIES, allows, effectiveRole, type Capability } from '../../domain/capabilities.js';
import { AppError } from '../app-error.js';
import { principalForSession, principalForToken, type Principal } from '../store/account-store.js';
import type { ProjectContext } from '../store/activity-store.js';
import { rolesIn, scopeOf, type Scope, type ScopeKind } from '../store/access-store.js';
import { jobForToken, type JobIdentity } from '../store/job-token.js';
import { runnerForCredential, type RunnerIdentity } from '../store/runner-store.js';
import { assertSameOrigin } from './origin-check.js';

export const SESSION_COOKIE = 'furrow_session';

/** What a route needs: a capability, and for scoped ones the route parameter naming the object. */
export interface AccessRule {
  capability: Capability | 'public';
  scope?: { kind: ScopeKind; param: string };
}

export interface Access {
  principal: Principal;
  scope: Scope | undefined;
  /** The caller's effective role in the scope (`owner` for instance admins). */
  role: Role | null;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: AccessRule;
  }
  interface FastifyRequest {
    access: Access | undefined;
    /** The runner whose credential authenticated a `runner` route. */
    runner: RunnerIdentity | undefined;
    /** The running job whose token authenticated a `job` route. */
    job: JobIdentity | undefined;
  }
}

/**
 * The caller, from a Bearer API token or the session cookie; undefined when neither is valid.
 * A cookie request must come from `publicOrigin` (or the request's own) when that matters.
 */
export async function authenticate(db: Db, req: FastifyRequest, publicOrigin?: string): Promise<Principal | undefined> {
  const header = req.headers.authorization;
  if (header?.startsWith('Bearer ')) return principalForToken(db, header.slice(7).trim());
  const cookie = req.cookies[SESSION_COOKIE];
  if (!cookie) return undefined;
  assertSameOrigin(req, publicOrigin);
  return principalForSession(db, cookie);
}

/** Why a request has no caller: a token or session was sent but is not valid, or nothing was. */
function missingPrincipal(req: FastifyRequest): AppError {
  if (req.headers.authorization?.startsWith('Bearer ')) return new AppError('token_invalid');
  return req.cookies[SESSION_COOKIE] ? new AppError('session_expired') : new AppError('unauthenticated');
}

/**
 * The caller's effective role on an object (`owner` for instance admins), or undefined when the
 * object does not exist or the caller may not see it.
 */
export async function resolveAccess(db: Db, principal: Principal, kind: ScopeKind, id: string): Promise<{ scope: Scope; role: Role } | undefined> {
  const scope = await scopeOf(db, kind, id);
  if (!scope) return undefined;
  if (principal.isAdmin) return { scope, role: 'owner' };
  if (scope.organizationId === null) return undefined; // instance-wide: admins only
  const roles = await rolesIn(db, principal.userId, { organizationId: scope.organizationId, projectId: scope.projectId });
  // Members of one project see its organization (as guests), not its other projects.
  const role = scope.projectId ? effectiveRole(roles.organization, roles.project) : effectiveRole(roles.organization, roles.anyProjectInOrganization ? 'guest' : null);
  return role ? { scope, role } : undefined;
}

/** The caller's authenticated principal on a route whose rule guarantees one. */
export function callerOf(req: FastifyRequest): Access & { scope: Scope } {
  if (!req.access?.scope) throw new AppError('internal', 'route has no scoped access rule');
  return req.access as Access & { scope: Scope };
}

/** Who acts on which project, for project-scoped writes that record an activity. */
export function projectContext(req: FastifyRequest): ProjectContext {
  const { scope, principal } = callerOf(req);
  return { organizationId: scope.organizationId!, projectId: scope.projectId!, actorUserId: principal.userId };
}

export function principalOf(req: FastifyRequest): Principal {
  if (!req.access) throw new AppError('unauthenticated');
  return req.access.principal;
}

/**
 * Refuses to register a route without an access rule, and checks that rule before the body is read:
 * 401 without credentials, 404 when the object does not exist or the caller may not see it,
 * 403 when the caller may see it but the role lacks the capability.
 */
export const accessPlugin = fp(async (app: FastifyInstance, opts: { db: Db; publicOrigin: string | undefined }) => {
  app.decorateRequest('access', undefined);
  app.decorateRequest('runner', undefined);
  app.decorateRequest('job', undefined);
  const isDocsPage = (url: string) => url === '/api/docs' || url.startsWith('/api/docs/');
  app.addHook('onRoute', (route) => {
    if (!route.config?.access && !isDocsPage(route.url)) {
      throw new Error(`route ${route.method} ${route.url} declares no access rule`);
    }
  });
  // onRequest, before the body is read: a caller without access learns nothing and costs little.
  app.addHook('onRequest', async (req) => {
    const rule = req.routeOptions.config.access;
    if (!rule) {
      if (req.routeOptions.url && !isDocsPage(req.routeOptions.url)) throw new AppError('forbidden', 'This route declares no access rule.');
      return;
    }
    if (rule.capability === 'public') return;
    if (rule.capability === 'runner') {
      const header = req.headers.authorization;
      const runner = header?.startsWith('Bearer ') ? await runnerForCredential(opts.db, header.slice(7).trim()) : undefined;
      if (!runner) throw new AppError('unauthenticated', 'Send the runner’s own credential; it may have been removed (register it again).');
      req.runner = runner;
      return;
    }
    if (rule.capability === 'job') {
      const header = req.headers.authorization;
      const job = header?.startsWith('Bearer ') ? await jobForToken(opts.db, header.slice(7).trim()) : undefined;
      if (!job) throw new AppError('unauthenticated', 'Send the job’s token; it is valid only while its job runs.');
      // A token reaches its own job's routes (`/jobs/:id/…`) only.
      if (job.jobId !== (req.params as Record<string, string>).id) throw new AppError('forbidden', 'This job token belongs to another job.');
      req.job = job;
      return;
    }
    const principal = await authenticate(opts.db, req, opts.publicOrigin);
    if (!principal) throw missingPrincipal(req);
    if (rule.capability === 'authenticated') {
      req.access = { principal, scope: undefined, role: null };
      return;
    }
    if (rule.capability === 'admin') {
      if (!principal.isAdmin) throw new AppError('forbidden', 'Only instance admins may do this.');
      req.access = { principal, scope: undefined, role: null };
      return;
    }
    if (!rule.scope) throw new Error(`capability ${rule.capability} needs a scope`);
    const id = (req.params as Record<string, string>)[rule.scope.param] ?? '';
    const seen = await resolveAccess(opts.db, principal, rule.scope.kind, id);
    const what = rule.scope.kind.charAt(0).toUpperCase() + rule.scope.kind.slice(1);
    if (!seen) throw new AppError('not_found', `${what} not found.`);
    const { scope, role } = seen;
    if (!allows(role, rule.capability as keyof typeof CAPABILITIES)) {
      throw new AppError('forbidden', `Your role (${role}) does not allow ${rule.capability}.`);
    }
    req.access = { principal, scope, role };
  });
});
