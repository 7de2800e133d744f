import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { AppError, notFound } from '../app-error.js';
import { callerOf, resolveAccess } from '../auth/access-plugin.js';
import { UUID } from '../store/access-store.js';
import { findUserByEmail } from '../store/account-store.js';
import { listMembers, putMember, removeMember, type MemberActor, type MemberScope } from '../store/membership-store.js';
import type { Resources } from '../resources.js';
import { IdParams, RoleSchema } from './schemas.js';

const PutBody = Type.Object({ email: Type.String({ minLength: 3, maxLength: 320 }), role: RoleSchema }, { additionalProperties: false });
const UserParams = Type.Object({ id: Type.String(), userId: Type.String() });

function actorOf(req: FastifyRequest, kind: 'organization' | 'project', id: string): MemberActor {
  const { principal, role } = callerOf(req);
  return { userId: principal.userId, role, roleNow: async (tx) => (await resolveAccess(tx, principal, kind, id))?.role ?? null };
}

/** Organization and project memberships: same routes under both. */
export const memberRoutes: FastifyPluginAsyncTypebox<{ res: Resources }> = async (app, { res }) => {
  const { db } = res.database;
  for (const kind of ['organization', 'project'] as const) {
    const base = `/${kind}s/:id/members`;
    const scope = { kind, param: 'id' } as const;
    const tags = [`${kind}s`];
    const memberScope = (req: FastifyRequest): MemberScope => {
      const s = callerOf(req).scope;
      return kind === 'organization' ? { kind, organizationId: s.organizationId! } : { kind, organizationId: s.organizationId!, projectId: s.projectId! };
    };

    app.get(base, { config: { access: { capability: 'members.read', scope } }, schema: { tags, params: IdParams, summary: `Members of the ${kind}` } }, async (req) => ({
      items: await listMembers(db, memberScope(req)),
    }));

    app.put(
      base,
      { config: { access: { capability: 'members.write', scope } }, schema: { tags, params: IdParams, body: PutBody, summary: `Add a member to the ${kind} or change a role` } },
      async (req) => {
        const user = await findUserByEmail(db, req.body.email);
        if (!user) throw new AppError('validation_failed', `No user has the email ${req.body.email}.`, [{ field: 'email', message: 'no such user' }]);
        // Only owners hand out ownership or change an owner’s role: checked by the store, under lock.
        await putMember(db, memberScope(req), user.id, req.body.role, actorOf(req, kind, req.params.id));
        return { userId: user.id, email: user.email, role: req.body.role };
      },
    );

    app.delete(`${base}/:userId`, { config: { access: { capability: 'members.write', scope } }, schema: { tags, params: UserParams } }, async (req, reply) => {
      if (!UUID.test(req.params.userId)) throw notFound('Member');
      const removed = await removeMember(db, memberScope(req), req.params.userId, actorOf(req, kind, req.params.id));
      if (!removed) throw notFound('Member');
      return reply.status(204).send();
    });
  }
};
